# The installed package, add_subdirectory and FetchContent, each used by a tiny consumer project.
foreach(mode find_package subdirectory fetchcontent)
  add_test(NAME package_${mode}
           COMMAND ${CMAKE_COMMAND} -DMODE=${mode} -DSRC=${PROJECT_SOURCE_DIR}
                   -DWORK=${CMAKE_CURRENT_BINARY_DIR}/package/${mode} -P ${CMAKE_CURRENT_SOURCE_DIR}/package/run_consumer.cmake)
  set_tests_properties(package_${mode} PROPERTIES LABELS "cpu;package")
endforeach()
