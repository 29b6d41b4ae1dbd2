// Declarations only, for topofr._data (data.cpp): examples/train/dataset.hpp includes <stb/stb_image.h> for
// its image-folder loader, which _data does not bind. These prototypes let dataset.hpp compile without stb
// installed; nothing calls them (the unused inline loader is never emitted), so nothing links against stb.
#pragma once
typedef unsigned char stbi_uc;
extern "C" {
int stbi_info_from_memory(const stbi_uc* buffer, int len, int* x, int* y, int* comp);
stbi_uc* stbi_load_from_memory(const stbi_uc* buffer, int len, int* x, int* y, int* channels_in_file,
                               int desired_channels);
const char* stbi_failure_reason(void);
void stbi_image_free(void* retval_from_stbi_load);
}
