// GPT-2's activation functions, as transformers defines them (ACT2FN).
#pragma once
#include <cmath>
#include <optional>
#include <string_view>

namespace gpt2::cpu {

enum class Activation { None, GeluNew, Gelu, Relu, Silu, Tanh };

// "gelu_new" | "gelu_pytorch_tanh" -> GeluNew (tanh approximation), "gelu" -> Gelu (erf),
// "relu", "silu"/"swish", "tanh"; anything else -> nullopt.
inline std::optional<Activation> activation_from_name(std::string_view name) {
  if (name == "gelu_new" || name == "gelu_pytorch_tanh" || name == "gelu_fast") return Activation::GeluNew;
  if (name == "gelu") return Activation::Gelu;
  if (name == "relu") return Activation::Relu;
  if (name == "silu" || name == "swish") return Activation::Silu;
  if (name == "tanh") return Activation::Tanh;
  return std::nullopt;
}

// Scalar reference definitions (kernels vectorise these and are tested against them).
inline float activation_reference(Activation a, float x) {
  switch (a) {
    case Activation::None: return x;
    case Activation::GeluNew: {
      const double u = x;
      return static_cast<float>(0.5 * u * (1.0 + std::tanh(0.7978845608028654 * (u + 0.044715 * u * u * u))));
    }
    case Activation::Gelu: return static_cast<float>(0.5 * double(x) * (1.0 + std::erf(double(x) * 0.7071067811865476)));
    case Activation::Relu: return x > 0 ? x : 0.0f;
    case Activation::Silu: return static_cast<float>(double(x) / (1.0 + std::exp(-double(x))));
    case Activation::Tanh: return std::tanh(x);
  }
  return x;
}

}  // namespace gpt2::cpu
