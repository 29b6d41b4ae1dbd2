# The `topofr` command-line tool against independent oracles written in tests/test_cli.py (a Python
# Kruskal, a NumPy GUM EM, PyTorch autograd). Exit 77 (skip) when torch is missing, unless the environment
# sets TOPOFR_REQUIRE_ORACLES.
if(TARGET topofr_cli)
  add_test(NAME cli COMMAND ${TOPOFR_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/test_cli.py $<TARGET_FILE:topofr_cli>)
  set_tests_properties(cli PROPERTIES LABELS "cpu" SKIP_RETURN_CODE 77 TIMEOUT 300)
  # `cmake --install` puts the tool at <prefix>/bin/topofr and it runs (a scratch prefix in the build tree).
  if(TOPOFR_INSTALL)
    add_test(NAME cli_install
             COMMAND ${CMAKE_COMMAND} -DBUILD_DIR=${CMAKE_BINARY_DIR}
                     -DPREFIX=${CMAKE_CURRENT_BINARY_DIR}/cli_install_prefix -DCONFIG=$<CONFIG>
                     -P ${CMAKE_CURRENT_SOURCE_DIR}/cli_install_check.cmake)
    set_tests_properties(cli_install PROPERTIES LABELS "cpu" TIMEOUT 120)
  endif()
endif()
