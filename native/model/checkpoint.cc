#include "model/checkpoint.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "core/error.h"
#include "core/json.h"
#include "model/json_limits.h"

namespace gpt2::model {

namespace {

constexpr std::string_view kPrefix = "transformer.";

std::string join_path(const std::string& dir, std::string_view name) {
  if (!dir.empty() && dir.back() == '/') return dir + std::string(name);
  return dir + "/" + std::string(name);
}

bool is_regular_file(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

bool exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

std::string quoted(std::string_view s) {
  std::string out = "'";
  for (size_t i = 0; i < s.size() && i < 120; i++) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    out += (c < 0x20 || c == 0x7f) ? '?' : static_cast<char>(c);
  }
  if (s.size() > 120) out += "...";
  return out + "'";
}

// Reads a whole (small) text file, refusing more than max_bytes.
std::string read_text_file(const std::string& path, size_t max_bytes) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) throw_io_error(path + ": cannot open: " + std::strerror(errno));
  struct FdCloser {
    int fd;
    ~FdCloser() { ::close(fd); }
  } closer{fd};
  struct stat st;
  if (::fstat(fd, &st) != 0) throw_io_error(path + ": cannot stat: " + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) throw_io_error(path + ": not a regular file");
  if (static_cast<uint64_t>(st.st_size) > max_bytes)
    throw_format_error(path + ": " + std::to_string(st.st_size) + " bytes is more than the limit of " +
                       std::to_string(max_bytes) + " for this file");
  std::string text;
  text.resize(static_cast<size_t>(st.st_size));
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = ::read(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw_io_error(path + ": read failed: " + std::strerror(errno));
    if (n == 0) break;  // shrank meanwhile: parse what is there
    done += static_cast<size_t>(n);
  }
  text.resize(done);
  return text;
}

// A shard must be a plain file name inside the model folder.
void check_shard_name(const std::string& index_path, const std::string& tensor, const std::string& shard) {
  bool ok = !shard.empty() && shard.size() <= 255 && shard != "." && shard != "..";
  for (char c : shard)
    if (c == '/' || c == '\\' || c == '\0') ok = false;
  if (!ok)
    throw_format_error(index_path + ": weight_map gives tensor " + quoted(tensor) + " the shard " + quoted(shard) +
                       ", which is not a plain file name in the model folder");
}

}  // namespace

bool is_ignored_buffer(std::string_view name) {
  // h.<digits>.attn.bias | h.<digits>.attn.masked_bias
  if (name.substr(0, 2) != "h.") return false;
  size_t i = 2;
  while (i < name.size() && name[i] >= '0' && name[i] <= '9') i++;
  if (i == 2) return false;
  std::string_view rest = name.substr(i);
  return rest == ".attn.bias" || rest == ".attn.masked_bias";
}

std::vector<std::pair<std::string, std::vector<int64_t>>> gpt2_tensor_shapes(const GPT2Config& c) {
  const int64_t E = c.n_embd, I = c.n_inner;
  std::vector<std::pair<std::string, std::vector<int64_t>>> out;
  out.push_back({"wte.weight", {c.vocab_size, E}});
  out.push_back({"wpe.weight", {c.n_positions, E}});
  for (int64_t l = 0; l < c.n_layer; l++) {
    const std::string p = "h." + std::to_string(l) + ".";
    out.push_back({p + "ln_1.weight", {E}});
    out.push_back({p + "ln_1.bias", {E}});
    out.push_back({p + "attn.c_attn.weight", {E, 3 * E}});
    out.push_back({p + "attn.c_attn.bias", {3 * E}});
    out.push_back({p + "attn.c_proj.weight", {E, E}});
    out.push_back({p + "attn.c_proj.bias", {E}});
    out.push_back({p + "ln_2.weight", {E}});
    out.push_back({p + "ln_2.bias", {E}});
    out.push_back({p + "mlp.c_fc.weight", {E, I}});
    out.push_back({p + "mlp.c_fc.bias", {I}});
    out.push_back({p + "mlp.c_proj.weight", {I, E}});
    out.push_back({p + "mlp.c_proj.bias", {E}});
  }
  out.push_back({"ln_f.weight", {E}});
  out.push_back({"ln_f.bias", {E}});
  return out;
}

Checkpoint::~Checkpoint() = default;

std::unique_ptr<Checkpoint> Checkpoint::open(const std::string& dir) {
  std::unique_ptr<Checkpoint> ck(new Checkpoint());
  ck->dir_ = dir;
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0)
    throw_io_error(dir + ": cannot open model folder: " + std::strerror(errno));
  if (!S_ISDIR(st.st_mode)) throw_io_error(dir + ": not a folder (expected a Hugging Face model folder)");

  ck->config_path_ = join_path(dir, "config.json");
  if (!exists(ck->config_path_)) throw_io_error(dir + ": no config.json in the model folder");
  ck->config_ = parse_config(read_text_file(ck->config_path_, kMaxConfigBytes), ck->config_path_);

  const std::string index_path = join_path(dir, "model.safetensors.index.json");
  const std::string single_path = join_path(dir, "model.safetensors");
  // transformers looks for model.safetensors first, then the sharded index.
  if (exists(single_path)) {
    ck->files_.push_back(SafetensorsFile::open(single_path));
    ck->add_file_tensors(*ck->files_.back(), nullptr);
  } else if (exists(index_path)) {
    const std::string text = read_text_file(index_path, kMaxIndexBytes);
    check_json_size(text, kMaxIndexBytes, kMaxIndexValues, index_path);
    const JsonValue root = parse_json(text, index_path);
    const JsonValue* map = root.find("weight_map");
    if (!map || !map->is_object()) throw_format_error(index_path + ": weight_map must be an object");
    if (map->members.empty()) throw_format_error(index_path + ": weight_map is empty");
    // Shards in order of first use, each with the tensors the index assigns to it.
    std::vector<std::pair<std::string, std::vector<std::string>>> shards;
    for (const auto& [tensor, shard] : map->members) {
      if (!shard.is_string())
        throw_format_error(index_path + ": weight_map value of " + quoted(tensor) + " must be a file name string");
      check_shard_name(index_path, tensor, shard.string);
      auto it = std::find_if(shards.begin(), shards.end(), [&](const auto& s) { return s.first == shard.string; });
      if (it == shards.end()) {
        shards.push_back({shard.string, {}});
        it = shards.end() - 1;
      }
      it->second.push_back(tensor);
    }
    for (const auto& [shard, tensors] : shards) {
      ck->files_.push_back(SafetensorsFile::open(join_path(dir, shard)));
      SafetensorsFile& file = *ck->files_.back();
      for (const auto& t : tensors)
        if (!file.find(t))
          throw_format_error(index_path + ": weight_map puts tensor " + quoted(t) + " in " + file.path() +
                             ", which does not contain it");
      ck->add_file_tensors(file, &tensors);
    }
  } else {
    std::string hint;
    if (exists(join_path(dir, "pytorch_model.bin")))
      hint = " (pytorch_model.bin is not supported: convert it to safetensors)";
    throw_io_error(dir + ": no model.safetensors or model.safetensors.index.json in the model folder" + hint);
  }
  return ck;
}

void Checkpoint::add_file_tensors(SafetensorsFile& file, const std::vector<std::string>* only) {
  auto add = [&](const TensorView& t) {
    std::string_view name = t.name;
    if (name.substr(0, kPrefix.size()) == kPrefix) name.remove_prefix(kPrefix.size());
    if (is_ignored_buffer(name)) return;
    auto [it, inserted] = by_name_.emplace(std::string(name), &t);
    if (!inserted) {
      const TensorView& other = *it->second;
      throw_format_error(t.file + ": tensor " + quoted(t.name) + " and " + quoted(other.name) +
                         (other.file != t.file ? " (in " + other.file + ")" : std::string()) + " are both " +
                         quoted(name));
    }
  };
  if (only) {
    for (const auto& n : *only) add(*file.find(n));
  } else {
    for (const auto& t : file.tensors()) add(t);
  }
}

std::vector<std::string> Checkpoint::files() const {
  std::vector<std::string> out;
  for (const auto& f : files_) out.push_back(f->path());
  return out;
}

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> out;
  out.reserve(by_name_.size());
  for (const auto& [name, view] : by_name_) out.push_back(name);
  std::sort(out.begin(), out.end());
  return out;
}

void Checkpoint::check_not_released() const {
  if (released_) throw Error(ErrorKind::Error, code::kDisposed, dir_ + ": checkpoint files were already released");
}

bool Checkpoint::has(std::string_view canonical_name) const {
  return by_name_.find(std::string(canonical_name)) != by_name_.end();
}

std::string Checkpoint::config_note(std::string_view name) const {
  const auto& c = config_;
  auto has_part = [&](std::string_view part) { return name.find(part) != std::string_view::npos; };
  std::string note = config_path_ + " (";
  if (name == "wte.weight" || name == "lm_head.weight")
    note += "vocab_size " + std::to_string(c.vocab_size) + ", n_embd " + std::to_string(c.n_embd);
  else if (name == "wpe.weight")
    note += "n_positions " + std::to_string(c.n_positions) + ", n_embd " + std::to_string(c.n_embd);
  else if (has_part(".mlp."))
    note += "n_embd " + std::to_string(c.n_embd) + ", n_inner " + std::to_string(c.n_inner);
  else
    note += "n_embd " + std::to_string(c.n_embd);
  return note + ")";
}

const TensorView& Checkpoint::tensor(std::string_view name, std::span<const int64_t> expected) const {
  check_not_released();
  auto it = by_name_.find(std::string(name));
  const std::string weights = files_.size() == 1 ? files_[0]->path() : join_path(dir_, "model.safetensors.index.json");
  if (it == by_name_.end()) {
    std::string why;
    if (name.substr(0, 2) == "h.") why = " (" + config_path_ + " has n_layer " + std::to_string(config_.n_layer) + ")";
    throw_format_error(weights + ": missing tensor " + quoted(name) + why);
  }
  const TensorView& t = *it->second;
  if (!dtype_is_weight(t.dtype))
    throw_format_error(t.file + ": tensor " + quoted(t.name) + " has dtype " + dtype_name(t.dtype) +
                       "; weights must be F32, F16 or BF16");
  if (!std::equal(t.shape.begin(), t.shape.end(), expected.begin(), expected.end()))
    throw_format_error(t.file + ": tensor " + quoted(t.name) + " has shape " + shape_to_string(t.shape) + ", but " +
                       config_note(name) + " needs " +
                       shape_to_string(std::vector<int64_t>(expected.begin(), expected.end())));
  return t;
}

const TensorView& Checkpoint::lm_head() const {
  const int64_t shape[] = {config_.vocab_size, config_.n_embd};
  if (!config_.tie_word_embeddings) {
    if (!has("lm_head.weight")) {
      check_not_released();
      throw_format_error((files_.size() == 1 ? files_[0]->path() : join_path(dir_, "model.safetensors.index.json")) +
                         ": missing tensor 'lm_head.weight' (" + config_path_ + " has tie_word_embeddings false)");
    }
    return tensor("lm_head.weight", shape);
  }
  if (has("lm_head.weight")) tensor("lm_head.weight", shape);  // transformers checks its shape, then ties it
  return tensor("wte.weight", shape);
}

void Checkpoint::validate() const {
  for (const auto& [name, shape] : gpt2_tensor_shapes(config_)) tensor(name, shape);
  lm_head();
}

void Checkpoint::read_f32(const TensorView& view, float* out) const {
  check_not_released();
  convert_to_f32(view, out);
  // Each tensor is read once while loading: its mapped pages are not needed any more.
  for (const auto& f : files_) f->drop_pages(view.data, view.nbytes);
}

void Checkpoint::read_bf16(const TensorView& view, uint16_t* out) const {
  // Through float32: exact for F16 and BF16 sources, so there is one rounding at most.
  std::vector<float> f32(static_cast<size_t>(view.numel()));
  read_f32(view, f32.data());
  for (size_t i = 0; i < f32.size(); i++) out[i] = f32_to_bf16(f32[i]);
}

bool Checkpoint::has_tokenizer_files() const {
  return (is_regular_file(join_path(dir_, "vocab.json")) && is_regular_file(join_path(dir_, "merges.txt"))) ||
         is_regular_file(join_path(dir_, "tokenizer.json"));
}

void Checkpoint::release() {
  for (auto& f : files_) f->release();
  released_ = true;
}

}  // namespace gpt2::model
