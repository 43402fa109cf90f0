// A safetensors file: 8-byte little-endian header length N, N bytes of JSON header
// ({name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {string: string}}),
// then the raw little-endian C-order tensor data. The file is memory-mapped read-only
// (read() into memory when mmap is not possible) and every header field is validated
// before a view is handed out: known dtype, non-negative shape with overflow-checked
// sizes, data_offsets inside the data section with end - begin == numel * element size,
// no two tensors overlapping, no duplicate names. Nothing in the header is trusted.
//
// Errors: ERR_GPT2_FILE_FORMAT naming the file, the tensor and what is wrong; failures
// to open/stat/read the file: ERR_GPT2_FILE_IO.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace gpt2::model {

// All dtypes of the safetensors format. Only F32, F16 and BF16 can be model weights;
// the others are parsed (their sizes validated) so that ignored buffers such as an old
// checkpoint's bool/uint8 attn.bias do not make a file unreadable.
enum class DType { F32, F16, BF16, F64, I64, I32, I16, I8, U64, U32, U16, U8, BOOL, F8_E4M3, F8_E5M2 };

const char* dtype_name(DType dtype);  // "F32", ...
size_t dtype_size(DType dtype);       // bytes per element
bool dtype_is_weight(DType dtype);    // F32, F16 or BF16

struct TensorView {
  std::string name;            // as stored in the file (no prefix stripping here)
  DType dtype = DType::F32;
  std::vector<int64_t> shape;  // each >= 0
  const void* data = nullptr;  // inside the mapping; NOT necessarily aligned (use memcpy)
  size_t nbytes = 0;           // == numel() * dtype_size(dtype), in bounds
  std::string file;            // path of the file holding it (for errors)
  int64_t numel() const;
};

// "[768, 2304]"
std::string shape_to_string(const std::vector<int64_t>& shape);

class SafetensorsFile {
 public:
  // Maps and validates `path`. Throws ERR_GPT2_FILE_IO / ERR_GPT2_FILE_FORMAT.
  static std::unique_ptr<SafetensorsFile> open(const std::string& path);
  // Parses a copy of `bytes` as if it were the file `name` (tests, fuzzing: the copy has
  // exactly bytes.size() bytes, so a sanitizer sees any read past the end).
  static std::unique_ptr<SafetensorsFile> from_bytes(std::string_view bytes, const std::string& name);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  // In header order.
  const std::vector<TensorView>& tensors() const { return tensors_; }
  // nullptr when absent.
  const TensorView* find(std::string_view name) const;
  // __metadata__ entries, in header order.
  const std::vector<std::pair<std::string, std::string>>& metadata() const { return metadata_; }
  size_t file_size() const { return size_; }
  // The whole file in memory, and where its data section starts (8 + header length):
  // every view lies in [bytes() + data_offset(), bytes() + file_size()).
  const uint8_t* bytes() const { return bytes_; }
  size_t data_offset() const { return data_offset_; }
  bool is_mapped() const { return mapped_; }
  // Unmaps the file; every TensorView's data pointer dangles afterwards (set to nullptr).
  void release();
  // Mapped files: drops from this process the pages lying wholly inside [data, data + bytes)
  // (a tensor already converted), so a load does not hold the whole file resident as well
  // as its packed copy. Reading them again faults them back in from the page cache. No-op
  // for unmapped files and ranges outside the file.
  void drop_pages(const void* data, size_t bytes) const;

 private:
  SafetensorsFile() = default;
  void parse();

  std::string path_;
  const uint8_t* bytes_ = nullptr;
  size_t size_ = 0;
  size_t data_offset_ = 0;
  bool mapped_ = false;
  std::unique_ptr<uint8_t[]> owned_;  // when read() or from_bytes
  std::vector<TensorView> tensors_;
  std::unordered_map<std::string_view, size_t> index_;  // keys point into tensors_[i].name
  std::vector<std::pair<std::string, std::string>> metadata_;
};

// Element conversions (exact: f16/bf16 -> f32 is lossless, including subnormals, inf, NaN).
float f16_to_f32(uint16_t h);
float bf16_to_f32(uint16_t b);
// Round to nearest even; NaN stays NaN (quiet).
uint16_t f32_to_bf16(float f);
uint16_t f32_to_f16(float f);

// Converts a weight tensor (F32/F16/BF16) to float32; `out` holds numel() floats.
// Throws a format error for other dtypes.
void convert_to_f32(const TensorView& view, float* out);

}  // namespace gpt2::model
