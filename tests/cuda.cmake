# CUDA tests (tests/cuda/test_*.cu): built whenever nvcc is found, run only where a GPU is (exit 77 = skip).
find_package(CUDAToolkit REQUIRED)
add_library(topofr_cuda_main OBJECT cuda/cuda_main.cpp)
target_link_libraries(topofr_cuda_main PUBLIC Catch2::Catch2 CUDA::cudart)
file(GLOB topofr_cuda_tests CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/cuda/test_*.cu)
foreach(src IN LISTS topofr_cuda_tests)
  get_filename_component(name ${src} NAME_WE)
  set(name cuda_${name})
  add_executable(${name} ${src} $<TARGET_OBJECTS:topofr_cuda_main>)
  target_link_libraries(${name} PRIVATE topofr_programs Catch2::Catch2 CUDA::cudart CUDA::cublas)
  target_include_directories(${name} PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
  target_compile_options(${name} PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:--expt-relaxed-constexpr -Xcompiler=-fopenmp>)
  target_compile_definitions(${name} PRIVATE
    TOPOFR_PYTHON="${TOPOFR_PYTHON}" TOPOFR_ORACLES="${CMAKE_CURRENT_SOURCE_DIR}/oracles"
    TOPOFR_RIPSER="${TOPOFR_RIPSER}" TOPOFR_TEST_TMP="${CMAKE_CURRENT_BINARY_DIR}/tmp")
  add_test(NAME ${name} COMMAND ${name})
  set_tests_properties(${name} PROPERTIES LABELS "cuda" SKIP_RETURN_CODE 77)
endforeach()
