# cmake -DMODE=<mode> -DSRC=<topofr source> -DWORK=<scratch dir> -P run_consumer.cmake
#   find_package, subdirectory, fetchcontent: a consumer project (tests/package) builds and runs one block.
#     As a subproject topofr is given no options: its defaults must leave the consumer alone.
#   cuda_missing: the installed package where no CUDA toolkit is found: the cuda component is not found.
#   cuda_package: the installed package's topofr::cuda compiled by nvcc (tests/package/cuda); prints
#     SKIPPED (a CTest skip) where no nvcc is found.
#   no_catch2: topofr at top level configures without Catch2 and Google Benchmark (their tests are then
#     not built, with a message), and fails when -DTOPOFR_BUILD_TESTS=ON requires Catch2.
file(REMOVE_RECURSE ${WORK})
set(off -DTOPOFR_BUILD_TESTS=OFF -DTOPOFR_BUILD_EXAMPLES=OFF -DTOPOFR_BUILD_BENCHMARKS=OFF -DTOPOFR_CUDA=OFF)
function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}")
  endif()
endfunction()

if(MODE STREQUAL "cuda_package")
  find_program(nvcc nvcc HINTS $ENV{CUDA_HOME}/bin /usr/local/cuda/bin NO_CACHE)
  if(NOT nvcc)
    message("SKIPPED: no nvcc")
    return()
  endif()
endif()

if(MODE STREQUAL "no_catch2")
  set(no -DCMAKE_DISABLE_FIND_PACKAGE_Catch2=ON -DCMAKE_DISABLE_FIND_PACKAGE_benchmark=ON
         -DCMAKE_DISABLE_FIND_PACKAGE_Torch=ON -DTOPOFR_CUDA=OFF)
  execute_process(COMMAND ${CMAKE_COMMAND} -S ${SRC} -B ${WORK}/auto ${no} RESULT_VARIABLE rc OUTPUT_VARIABLE out
                  ERROR_VARIABLE out)
  if(NOT rc EQUAL 0 OR NOT out MATCHES "Catch2 not found, the tests are not built"
     OR NOT out MATCHES "benchmark not found, the benchmarks are not built")
    message(FATAL_ERROR "top-level configure without Catch2 (${rc}):\n${out}")
  endif()
  execute_process(COMMAND ${CMAKE_COMMAND} -S ${SRC} -B ${WORK}/on ${no} -DTOPOFR_BUILD_TESTS=ON
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(rc EQUAL 0 OR NOT out MATCHES "Catch2")
    message(FATAL_ERROR "-DTOPOFR_BUILD_TESTS=ON without Catch2 should fail naming Catch2 (${rc}):\n${out}")
  endif()
  return()
endif()

set(extra)
if(MODE MATCHES "find_package|cuda_missing|cuda_package")
  run(${CMAKE_COMMAND} -S ${SRC} -B ${WORK}/topofr-build ${off} -DCMAKE_INSTALL_PREFIX=${WORK}/prefix)
  run(${CMAKE_COMMAND} --install ${WORK}/topofr-build)
  set(extra -DCMAKE_PREFIX_PATH=${WORK}/prefix)
endif()
if(MODE STREQUAL "cuda_package")
  run(${CMAKE_COMMAND} -S ${SRC}/tests/package/cuda -B ${WORK}/consumer ${extra} -DCMAKE_BUILD_TYPE=Release
      -DCMAKE_CUDA_COMPILER=${nvcc})
  run(${CMAKE_COMMAND} --build ${WORK}/consumer)
  run(${WORK}/consumer/consumer_cuda)
  return()
endif()
if(MODE STREQUAL "cuda_missing")
  set(extra ${extra} -DCMAKE_DISABLE_FIND_PACKAGE_CUDAToolkit=ON)
endif()
run(${CMAKE_COMMAND} -S ${SRC}/tests/package -B ${WORK}/consumer -DTOPOFR_CONSUME=${MODE}
    -DTOPOFR_SOURCE_DIR=${SRC} ${extra} -DCMAKE_BUILD_TYPE=Release)
run(${CMAKE_COMMAND} --build ${WORK}/consumer)
run(${WORK}/consumer/consumer)
