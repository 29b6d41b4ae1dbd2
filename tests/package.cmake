# The installed package, add_subdirectory and FetchContent, each used by a tiny consumer project; the
# installed package without a CUDA toolkit and its topofr::cuda with nvcc (skipped without); a top-level
# configure without Catch2 (tests/package/run_consumer.cmake says what each checks).
foreach(mode find_package subdirectory fetchcontent cuda_missing cuda_package no_catch2)
  add_test(NAME package_${mode}
           COMMAND ${CMAKE_COMMAND} -DMODE=${mode} -DSRC=${PROJECT_SOURCE_DIR}
                   -DWORK=${CMAKE_CURRENT_BINARY_DIR}/package/${mode} -P ${CMAKE_CURRENT_SOURCE_DIR}/package/run_consumer.cmake)
  set_tests_properties(package_${mode} PROPERTIES LABELS "cpu;package" SKIP_REGULAR_EXPRESSION "SKIPPED:")
endforeach()
set_tests_properties(package_cuda_package PROPERTIES TIMEOUT 600)
