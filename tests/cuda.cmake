# CUDA tests (tests/cuda/test_*.cu): built whenever nvcc is found, run only where a GPU is (exit 77 = skip,
# unless TOPOFR_REQUIRE_GPU is set: see cuda/cuda_main.cpp). `gpu_check_targets` builds every program the GPU
# check runs (tests, benchmarks, gpu_probe) in one parallel build.
find_package(CUDAToolkit REQUIRED)
add_custom_target(gpu_check_targets)

add_executable(gpu_probe cuda/gpu_probe.cpp)
target_link_libraries(gpu_probe PRIVATE ${TOPOFR_CUDART})
add_dependencies(gpu_check_targets gpu_probe)

add_library(topofr_cuda_main OBJECT cuda/cuda_main.cpp)
target_link_libraries(topofr_cuda_main PUBLIC Catch2::Catch2 ${TOPOFR_CUDART})
file(GLOB topofr_cuda_tests CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/cuda/test_*.cu)
foreach(src IN LISTS topofr_cuda_tests)
  get_filename_component(name ${src} NAME_WE)
  set(name cuda_${name})
  add_executable(${name} ${src} $<TARGET_OBJECTS:topofr_cuda_main>)
  target_link_libraries(${name} PRIVATE topofr_programs Catch2::Catch2 ${TOPOFR_CUDART})
  target_include_directories(${name} PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
  target_compile_options(${name} PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:--expt-relaxed-constexpr -Xcompiler=-fopenmp>)
  target_compile_definitions(${name} PRIVATE
    TOPOFR_PYTHON="${TOPOFR_PYTHON}" TOPOFR_ORACLES="${CMAKE_CURRENT_SOURCE_DIR}/oracles"
    TOPOFR_RIPSER="${TOPOFR_RIPSER}" TOPOFR_TEST_TMP="${CMAKE_CURRENT_BINARY_DIR}/tmp")
  add_test(NAME ${name} COMMAND ${name})
  set_tests_properties(${name} PROPERTIES LABELS "cuda" SKIP_RETURN_CODE 77)
  add_dependencies(gpu_check_targets ${name})
endforeach()

# The GPU check's own test: its dry run over this build's programs (tests/gpu_check_test.sh).
add_test(NAME gpu_check_dry_run
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/gpu_check_test.sh ${CMAKE_BINARY_DIR}
                 ${CMAKE_CURRENT_BINARY_DIR}/gpu-check-dry-run)
set_tests_properties(gpu_check_dry_run PROPERTIES LABELS "cuda" TIMEOUT 300)
