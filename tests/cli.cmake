# The `topofr` command-line tool against independent oracles written in tests/test_cli.py (a Python
# Kruskal, a NumPy GUM EM, PyTorch autograd). Exit 77 (skip) when torch is missing, unless the environment
# sets TOPOFR_REQUIRE_ORACLES.
if(TARGET topofr_cli)
  add_test(NAME cli COMMAND ${TOPOFR_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/test_cli.py $<TARGET_FILE:topofr_cli>)
  set_tests_properties(cli PROPERTIES LABELS "cpu" SKIP_RETURN_CODE 77 TIMEOUT 300)
endif()
