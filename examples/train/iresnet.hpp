// examples/train/iresnet.hpp — the IResNet backbone family of face recognition (insightface's
// `iresnet.py`), in the LibTorch C++ frontend. IR block: BN -> conv3x3 -> BN -> PReLU -> conv3x3(stride)
// -> BN, plus a conv1x1+BN projection shortcut when the shape changes. Stem: conv3x3 -> BN -> PReLU.
// Output: BN2d -> dropout -> flatten -> FC -> BN1d (a fixed unit scale, as insightface) = the embedding.
// A width multiplier scales every channel count, so that the same family trains on a 2-core CPU.
#pragma once

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace topofr::train {

struct iresnet_options {
  int depth = 50;              // 18, 34, 50 or 100
  double width = 1.0;          // channel multiplier (64, 128, 256, 512 at 1.0)
  std::int64_t height = 112;   // input image size
  std::int64_t width_px = 112;
  std::int64_t embedding = 512;
  double dropout = 0.0;        // insightface's default for the IResNets
};

/// Blocks per stage, as in insightface: iresnet18/34/50/100.
inline std::vector<int> iresnet_layers(int depth) {
  switch (depth) {
    case 18: return {2, 2, 2, 2};
    case 34: return {3, 4, 6, 3};
    case 50: return {3, 4, 14, 3};
    case 100: return {3, 13, 30, 3};
    default: throw std::invalid_argument("iresnet: depth must be 18, 34, 50 or 100, got " + std::to_string(depth));
  }
}

inline torch::nn::Conv2d iresnet_conv(std::int64_t in, std::int64_t out, std::int64_t k, std::int64_t stride) {
  return torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, k).stride(stride).padding(k / 2).bias(false));
}

struct IBasicBlockImpl : torch::nn::Module {
  IBasicBlockImpl(std::int64_t in, std::int64_t planes, std::int64_t stride)
      : bn1(register_module("bn1", torch::nn::BatchNorm2d(torch::nn::BatchNorm2dOptions(in).eps(1e-5)))),
        conv1(register_module("conv1", iresnet_conv(in, planes, 3, 1))),
        bn2(register_module("bn2", torch::nn::BatchNorm2d(torch::nn::BatchNorm2dOptions(planes).eps(1e-5)))),
        prelu(register_module("prelu", torch::nn::PReLU(torch::nn::PReLUOptions().num_parameters(planes)))),
        conv2(register_module("conv2", iresnet_conv(planes, planes, 3, stride))),
        bn3(register_module("bn3", torch::nn::BatchNorm2d(torch::nn::BatchNorm2dOptions(planes).eps(1e-5)))) {
    if (stride != 1 || in != planes) {
      down_conv = register_module("down_conv", iresnet_conv(in, planes, 1, stride));
      down_bn = register_module("down_bn", torch::nn::BatchNorm2d(torch::nn::BatchNorm2dOptions(planes).eps(1e-5)));
    }
  }
  torch::Tensor forward(const torch::Tensor& x) {
    torch::Tensor out = bn3(conv2(prelu(bn2(conv1(bn1(x))))));
    return out + (down_conv ? down_bn(down_conv(x)) : x);
  }
  torch::nn::BatchNorm2d bn1;
  torch::nn::Conv2d conv1;
  torch::nn::BatchNorm2d bn2;
  torch::nn::PReLU prelu;
  torch::nn::Conv2d conv2;
  torch::nn::BatchNorm2d bn3;
  torch::nn::Conv2d down_conv{nullptr};
  torch::nn::BatchNorm2d down_bn{nullptr};
};
TORCH_MODULE(IBasicBlock);

struct IResNetImpl : torch::nn::Module {
  explicit IResNetImpl(const iresnet_options& o) : opt(o) {
    const std::vector<int> layers = iresnet_layers(o.depth);
    if (!(o.width > 0) || !std::isfinite(o.width))
      throw std::invalid_argument("iresnet: width must be > 0, got " + std::to_string(o.width));
    if (o.height < 16 || o.width_px < 16)
      throw std::invalid_argument("iresnet: image size must be >= 16 x 16, got " + std::to_string(o.height) + " x " +
                                  std::to_string(o.width_px));
    if (o.embedding < 2) throw std::invalid_argument("iresnet: embedding must be >= 2, got " + std::to_string(o.embedding));
    auto ch = [&](int base) { return std::max<std::int64_t>(4, std::llround(base * o.width)); };
    const std::int64_t c0 = ch(64);
    conv1 = register_module("conv1", iresnet_conv(3, c0, 3, 1));
    bn1 = register_module("bn1", torch::nn::BatchNorm2d(torch::nn::BatchNorm2dOptions(c0).eps(1e-5)));
    prelu = register_module("prelu", torch::nn::PReLU(torch::nn::PReLUOptions().num_parameters(c0)));
    std::int64_t in = c0, h = o.height, w = o.width_px;
    const int bases[4] = {64, 128, 256, 512};
    for (int s = 0; s < 4; ++s) {
      torch::nn::Sequential stage;
      const std::int64_t planes = ch(bases[s]);
      for (int b = 0; b < layers[static_cast<std::size_t>(s)]; ++b) {
        stage->push_back(IBasicBlock(in, planes, b == 0 ? 2 : 1));
        in = planes;
      }
      h = (h + 1) / 2;  // conv3x3, padding 1, stride 2
      w = (w + 1) / 2;
      stages.push_back(register_module("layer" + std::to_string(s + 1), stage));
    }
    bn2 = register_module("bn2", torch::nn::BatchNorm2d(torch::nn::BatchNorm2dOptions(in).eps(1e-5)));
    dropout = register_module("dropout", torch::nn::Dropout(torch::nn::DropoutOptions(o.dropout)));
    fc = register_module("fc", torch::nn::Linear(in * h * w, o.embedding));
    features = register_module("features", torch::nn::BatchNorm1d(torch::nn::BatchNorm1dOptions(o.embedding).eps(1e-5)));
    // insightface: conv weights ~ N(0, 0.1), BN scale 1 / shift 0; the embedding BN has a fixed unit scale.
    for (auto& m : modules(/*include_self=*/false)) {
      if (auto* c = m->as<torch::nn::Conv2d>()) torch::nn::init::normal_(c->weight, 0.0, 0.1);
    }
    torch::nn::init::constant_(features->weight, 1.0);
    features->weight.set_requires_grad(false);
  }

  torch::Tensor forward(torch::Tensor x) {
    x = prelu(bn1(conv1(x)));
    for (auto& s : stages) x = s->forward(x);
    x = dropout(bn2(x)).flatten(1);
    return features(fc(x));
  }

  iresnet_options opt;
  torch::nn::Conv2d conv1{nullptr};
  torch::nn::BatchNorm2d bn1{nullptr};
  torch::nn::PReLU prelu{nullptr};
  std::vector<torch::nn::Sequential> stages;
  torch::nn::BatchNorm2d bn2{nullptr};
  torch::nn::Dropout dropout{nullptr};
  torch::nn::Linear fc{nullptr};
  torch::nn::BatchNorm1d features{nullptr};
};
TORCH_MODULE(IResNet);

/// The normalised classifier: cos(i, j) = <z_i / |z_i|, W_j / |W_j|>, W ~ N(0, 0.01) as insightface's
/// partial FC. The margin and the softmax are the library's (autograd.hpp).
struct NormClassifierImpl : torch::nn::Module {
  NormClassifierImpl(std::int64_t embedding, std::int64_t classes)
      : weight(register_parameter("weight", torch::randn({classes, embedding}) * 0.01)) {}
  torch::Tensor forward(const torch::Tensor& z) {
    namespace F = torch::nn::functional;
    const auto opts = F::NormalizeFuncOptions().dim(1).eps(1e-12);
    return F::normalize(z, opts).mm(F::normalize(weight, opts).t()).clamp(-1.0, 1.0);
  }
  torch::Tensor weight;
};
TORCH_MODULE(NormClassifier);

}  // namespace topofr::train
