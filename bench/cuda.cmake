# GPU microbenchmarks (bench/cuda/bench_*.cu): built whenever nvcc is found.
find_package(CUDAToolkit REQUIRED)
file(GLOB topofr_cuda_benches CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/cuda/bench_*.cu)
foreach(src IN LISTS topofr_cuda_benches)
  get_filename_component(name ${src} NAME_WE)
  add_executable(cuda_${name} ${src})
  target_link_libraries(cuda_${name} PRIVATE topofr_programs benchmark::benchmark CUDA::cudart CUDA::cublas)
  target_compile_options(cuda_${name} PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:--expt-relaxed-constexpr -Xcompiler=-fopenmp>)
endforeach()
