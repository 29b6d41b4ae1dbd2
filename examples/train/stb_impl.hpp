// examples/train/stb_impl.hpp — the one place that compiles stb_image. Include it in exactly ONE .cpp of a
// program. When the program links Debian's compiled libstb (libstb-dev ships libstb.so with the same
// functions), define TOPOFR_TRAIN_STB_LINKED and this header compiles nothing. (The figures are drawn by
// plot.py with matplotlib: nothing here writes images.)
#pragma once

#ifndef TOPOFR_TRAIN_STB_LINKED
#define STB_IMAGE_IMPLEMENTATION
#define STBI_FAILURE_USERMSG   // readable failure reasons in the error messages
#include <stb/stb_image.h>
#endif
