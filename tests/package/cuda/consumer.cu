// Downstream CUDA smoke test: <topofr/topofr.cuh> compiles with only topofr::cuda's flags; one CUDA
// block is instantiated (launched only when a GPU is present) and one CPU block runs.
#include <topofr/topofr.cuh>
#include <cstdio>

int main() {
  const float pts[3] = {0.f, 1.f, 3.f};
  float dist[9];
  topofr::pairwise_distances(topofr::cpu, topofr::make_matrix_view(pts, 3, 1), topofr::make_matrix_view(dist, 3, 3));
  int devices = 0;
  if (cudaGetDeviceCount(&devices) == cudaSuccess && devices > 0) {
    float* d = nullptr;
    cudaMalloc(&d, sizeof(float) * 12);
    cudaMemcpy(d, pts, sizeof(pts), cudaMemcpyHostToDevice);
    topofr::cuda::stream_context sc;  // a stream, the default allocator and a status word
    topofr::pairwise_distances(sc.ctx, topofr::make_device_matrix_view(static_cast<const float*>(d), 3, 1),
                               topofr::make_device_matrix_view(d + 3, 3, 3));
    sc.check("consumer_cuda");
    cudaFree(d);
  }
  const bool ok = dist[1] == 1.f && dist[2] == 3.f && dist[5] == 2.f;
  std::printf("consumer_cuda: %d device(s), distances %s\n", devices, ok ? "ok" : "WRONG");
  return ok ? 0 : 1;
}
