# Header hygiene: the public CPU headers compile warning-free under -Wall -Wextra -Wconversion
# -Wsign-conversion -Werror (clang++) and -Wall -Wextra -Werror (g++), with and without OpenMP, as a
# consumer that gets topofr through -I sees them (tests/headers/check_warnings.sh; skipped without clang++).
get_target_property(topofr_eigen_dirs Eigen3::Eigen INTERFACE_INCLUDE_DIRECTORIES)
list(GET topofr_eigen_dirs 0 topofr_eigen_dir)
add_test(NAME header_warnings
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/headers/check_warnings.sh ${PROJECT_SOURCE_DIR}/include
                 ${topofr_eigen_dir} g++)
set_tests_properties(header_warnings PROPERTIES LABELS "cpu" SKIP_RETURN_CODE 77 TIMEOUT 600)

# Memory spaces of views: a host view passed to a CUDA overload (or a device view to a CPU one) must not
# compile (tests/headers/check_spaces.sh; compiled against the SIMT emulator's CUDA headers, no nvcc).
if(UNIX AND CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
  add_test(NAME view_memory_spaces
           COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/headers/check_spaces.sh ${PROJECT_SOURCE_DIR}/include
                   ${topofr_eigen_dir} ${CMAKE_CURRENT_SOURCE_DIR}/emu ${CMAKE_CXX_COMPILER})
  set_tests_properties(view_memory_spaces PROPERTIES LABELS "cpu" TIMEOUT 600)
endif()
