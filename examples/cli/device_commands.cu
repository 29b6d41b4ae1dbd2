// examples/cli/device_commands.cu — with CUDA, the four subcommand files compiled by nvcc as ONE translation
// unit. The library defines its CUDA kernels in its headers (e.g. topofr::detail::cu::gram_reduce_kernel, a
// non-template __global__ function); two nvcc translation units that include them each define the same
// kernel stubs and the link fails with "multiple definition". Without CUDA the files are compiled one by one.
#include "pairs.cpp"
#include "isa.cpp"
#include "gum.cpp"
#include "heads.cpp"
