#include "model/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "core/cpu_features.h"
#include "core/error.h"
#include "cpu/f16_convert.h"
#include "core/json.h"
#include "model/json_limits.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors data are little-endian");

namespace gpt2::model {

namespace {

// std::bit_cast without C++20, so the libFuzzer build (clang, -std=c++17) compiles this too.
inline float float_from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline uint32_t bits_from_float(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

struct DTypeInfo {
  const char* name;
  DType dtype;
  size_t size;
};
constexpr DTypeInfo kDTypes[] = {
    {"F32", DType::F32, 4},   {"F16", DType::F16, 2},   {"BF16", DType::BF16, 2},       {"F64", DType::F64, 8},
    {"I64", DType::I64, 8},   {"I32", DType::I32, 4},   {"I16", DType::I16, 2},         {"I8", DType::I8, 1},
    {"U64", DType::U64, 8},   {"U32", DType::U32, 4},   {"U16", DType::U16, 2},         {"U8", DType::U8, 1},
    {"BOOL", DType::BOOL, 1}, {"F8_E4M3", DType::F8_E4M3, 1}, {"F8_E5M2", DType::F8_E5M2, 1},
};

constexpr size_t kMaxRank = 16;

std::string quoted(std::string_view s) {
  // Tensor names come from the file: keep them short and printable in messages.
  std::string out = "'";
  for (size_t i = 0; i < s.size() && i < 120; i++) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    out += (c < 0x20 || c == 0x7f) ? '?' : static_cast<char>(c);
  }
  if (s.size() > 120) out += "...";
  return out + "'";
}

[[noreturn]] void io_error(const std::string& path, const std::string& what) {
  throw_io_error(path + ": " + what + ": " + std::strerror(errno));
}

}  // namespace

const char* dtype_name(DType dtype) {
  for (const auto& d : kDTypes)
    if (d.dtype == dtype) return d.name;
  return "?";
}

size_t dtype_size(DType dtype) {
  for (const auto& d : kDTypes)
    if (d.dtype == dtype) return d.size;
  return 0;
}

bool dtype_is_weight(DType dtype) { return dtype == DType::F32 || dtype == DType::F16 || dtype == DType::BF16; }

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;  // validated when the view was made: no overflow
  return n;
}

std::string shape_to_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); i++) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

std::unique_ptr<SafetensorsFile> SafetensorsFile::open(const std::string& path) {
  std::unique_ptr<SafetensorsFile> f(new SafetensorsFile());
  f->path_ = path;
  // O_NONBLOCK: a FIFO planted under the file's name must not block open(); it is
  // rejected below as not a regular file (the flag does nothing for regular files).
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) io_error(path, "cannot open");
  struct FdCloser {
    int fd;
    ~FdCloser() { ::close(fd); }
  } closer{fd};
  struct stat st;
  if (::fstat(fd, &st) != 0) io_error(path, "cannot stat");
  if (!S_ISREG(st.st_mode)) throw_io_error(path + ": not a regular file");
  if (st.st_size < 8)
    throw_format_error(path + ": file is " + std::to_string(st.st_size) +
                       " bytes, too small for a safetensors file (at least 8)");
  f->size_ = static_cast<size_t>(st.st_size);
  void* p = ::mmap(nullptr, f->size_, PROT_READ, MAP_PRIVATE, fd, 0);
  if (p != MAP_FAILED) {
    f->bytes_ = static_cast<const uint8_t*>(p);
    f->mapped_ = true;
  } else {
    // Some filesystems cannot be mapped: read the whole file instead.
    f->owned_.reset(new (std::nothrow) uint8_t[f->size_]);
    if (!f->owned_) throw_io_error(path + ": cannot map or allocate " + std::to_string(f->size_) + " bytes");
    size_t done = 0;
    while (done < f->size_) {
      ssize_t n = ::pread(fd, f->owned_.get() + done, f->size_ - done, static_cast<off_t>(done));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) io_error(path, "read failed");
      if (n == 0) throw_io_error(path + ": file shrank while being read");
      done += static_cast<size_t>(n);
    }
    f->bytes_ = f->owned_.get();
  }
  f->parse();
  return f;
}

std::unique_ptr<SafetensorsFile> SafetensorsFile::from_bytes(std::string_view bytes, const std::string& name) {
  std::unique_ptr<SafetensorsFile> f(new SafetensorsFile());
  f->path_ = name;
  if (bytes.size() < 8)
    throw_format_error(name + ": file is " + std::to_string(bytes.size()) +
                       " bytes, too small for a safetensors file (at least 8)");
  f->size_ = bytes.size();
  f->owned_.reset(new uint8_t[bytes.size()]);
  std::memcpy(f->owned_.get(), bytes.data(), bytes.size());
  f->bytes_ = f->owned_.get();
  f->parse();
  return f;
}

SafetensorsFile::~SafetensorsFile() { release(); }

void SafetensorsFile::release() {
  if (mapped_ && bytes_) ::munmap(const_cast<uint8_t*>(bytes_), size_);
  mapped_ = false;
  bytes_ = nullptr;
  owned_.reset();
  for (auto& t : tensors_) t.data = nullptr;
}

void SafetensorsFile::drop_pages(const void* data, size_t bytes) const {
  const uint8_t* p = static_cast<const uint8_t*>(data);
  if (!mapped_ || !bytes_ || p < bytes_ || bytes > size_ || p - bytes_ > static_cast<ptrdiff_t>(size_ - bytes)) return;
  const uintptr_t page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(p) + page - 1) / page * page;
  const uintptr_t end = (reinterpret_cast<uintptr_t>(p) + bytes) / page * page;
  // A private read-only file mapping: the dropped pages are clean copies of the file.
  if (begin < end) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

const TensorView* SafetensorsFile::find(std::string_view name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

void SafetensorsFile::parse() {
  const std::string& file = path_;
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; i--) header_len = (header_len << 8) | bytes_[i];
  if (header_len > kMaxHeaderBytes)
    throw_format_error(file + ": header length " + std::to_string(header_len) + " is more than the limit of " +
                       std::to_string(kMaxHeaderBytes) + " bytes (corrupt or not a safetensors file)");
  if (header_len > size_ - 8)
    throw_format_error(file + ": header length " + std::to_string(header_len) + " runs past the end of the " +
                       std::to_string(size_) + "-byte file (truncated?)");
  if (header_len < 2) throw_format_error(file + ": header is " + std::to_string(header_len) + " bytes, too short");
  const std::string_view header(reinterpret_cast<const char*>(bytes_ + 8), header_len);
  if (header[0] != '{') throw_format_error(file + ": header does not start with '{' (not a safetensors file?)");
  const std::string header_source = file + " (header)";
  check_json_size(header, kMaxHeaderBytes, kMaxHeaderValues, header_source);
  const JsonValue root = parse_json(header, header_source);
  if (!root.is_object()) throw_format_error(file + ": header is not a JSON object");

  data_offset_ = 8 + header_len;
  const uint8_t* data = bytes_ + 8 + header_len;
  const uint64_t data_size = size_ - 8 - header_len;
  bool seen_metadata = false;
  tensors_.reserve(root.members.size());
  for (const auto& [name, info] : root.members) {
    const std::string where = file + ": tensor " + quoted(name);
    if (name == "__metadata__") {
      if (seen_metadata) throw_format_error(file + ": duplicate __metadata__");
      seen_metadata = true;
      if (!info.is_object()) throw_format_error(file + ": __metadata__ must be an object of strings");
      for (const auto& [k, v] : info.members) {
        if (!v.is_string())
          throw_format_error(file + ": __metadata__ value " + quoted(k) + " must be a string (got " +
                             JsonValue::type_name(v.type) + ")");
        metadata_.emplace_back(k, v.string);
      }
      continue;
    }
    if (name.empty()) throw_format_error(file + ": a tensor has an empty name");
    if (!info.is_object())
      throw_format_error(where + ": entry must be an object (got " + JsonValue::type_name(info.type) + ")");
    const JsonValue* dtype = info.find("dtype");
    const JsonValue* shape = info.find("shape");
    const JsonValue* offsets = info.find("data_offsets");
    if (!dtype || !shape || !offsets)
      throw_format_error(where + ": missing " + std::string(!dtype ? "dtype" : !shape ? "shape" : "data_offsets"));
    if (!dtype->is_string()) throw_format_error(where + ": dtype must be a string");
    TensorView t;
    const DTypeInfo* dt = nullptr;
    for (const auto& d : kDTypes)
      if (dtype->string == d.name) dt = &d;
    if (!dt) throw_format_error(where + ": unknown dtype " + quoted(dtype->string));
    t.dtype = dt->dtype;

    if (!shape->is_array()) throw_format_error(where + ": shape must be an array");
    if (shape->items.size() > kMaxRank)
      throw_format_error(where + ": shape has " + std::to_string(shape->items.size()) + " dimensions (limit " +
                         std::to_string(kMaxRank) + ")");
    uint64_t numel = 1;
    for (const auto& d : shape->items) {
      if (!d.is_number() || !d.is_integer || d.integer < 0)
        throw_format_error(where + ": shape entries must be non-negative integers");
      if (__builtin_mul_overflow(numel, static_cast<uint64_t>(d.integer), &numel) || numel > (uint64_t{1} << 62))
        throw_format_error(where + ": shape " + shape_to_string([&] {
                             std::vector<int64_t> s;
                             for (const auto& x : shape->items) s.push_back(x.integer);
                             return s;
                           }()) + " has too many elements");
      t.shape.push_back(d.integer);
    }
    uint64_t nbytes;
    if (__builtin_mul_overflow(numel, static_cast<uint64_t>(dt->size), &nbytes))
      throw_format_error(where + ": shape " + shape_to_string(t.shape) + " is too large");

    if (!offsets->is_array() || offsets->items.size() != 2)
      throw_format_error(where + ": data_offsets must be an array [begin, end]");
    for (const auto& o : offsets->items)
      if (!o.is_number() || !o.is_integer || o.integer < 0)
        throw_format_error(where + ": data_offsets must be non-negative integers");
    const uint64_t begin = static_cast<uint64_t>(offsets->items[0].integer);
    const uint64_t end = static_cast<uint64_t>(offsets->items[1].integer);
    if (begin > end)
      throw_format_error(where + ": data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) +
                         "] has begin after end");
    if (end > data_size)
      throw_format_error(where + ": data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) +
                         "] run past the end of the data section (" + std::to_string(data_size) +
                         " bytes; file truncated?)");
    if (end - begin != nbytes)
      throw_format_error(where + ": data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) + "] hold " +
                         std::to_string(end - begin) + " bytes but " + dt->name + " " + shape_to_string(t.shape) +
                         " needs " + std::to_string(nbytes));
    t.name = name;
    t.data = data + begin;
    t.nbytes = static_cast<size_t>(nbytes);
    t.file = file;
    tensors_.push_back(std::move(t));
  }

  // Names: unique. (index_ keys view tensors_[i].name; tensors_ no longer grows.)
  index_.reserve(tensors_.size());
  for (size_t i = 0; i < tensors_.size(); i++)
    if (!index_.emplace(tensors_[i].name, i).second)
      throw_format_error(file + ": duplicate tensor " + quoted(tensors_[i].name));

  // No overlaps: sorted by begin, each non-empty tensor starts at or after the previous end.
  std::vector<const TensorView*> order;
  order.reserve(tensors_.size());
  for (const auto& t : tensors_)
    if (t.nbytes > 0) order.push_back(&t);
  std::sort(order.begin(), order.end(), [](const TensorView* a, const TensorView* b) { return a->data < b->data; });
  for (size_t i = 1; i < order.size(); i++) {
    const TensorView* prev = order[i - 1];
    const TensorView* cur = order[i];
    if (static_cast<const uint8_t*>(prev->data) + prev->nbytes > static_cast<const uint8_t*>(cur->data))
      throw_format_error(file + ": tensors " + quoted(prev->name) + " and " + quoted(cur->name) +
                         " overlap in the data section");
  }
}

float f16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  const uint32_t exp = (h >> 10) & 0x1f;
  uint32_t mant = h & 0x3ff;
  uint32_t bits;
  if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (mant << 13);  // inf / NaN (payload kept)
  } else if (exp != 0) {
    bits = sign | ((exp + 112) << 23) | (mant << 13);  // rebias 15 -> 127
  } else if (mant == 0) {
    bits = sign;  // +-0
  } else {
    // Subnormal: value = mant * 2^-24. Normalise the mantissa.
    int e = -1;
    do {
      e++;
      mant <<= 1;
    } while ((mant & 0x400) == 0);
    bits = sign | static_cast<uint32_t>(112 - e) << 23 | ((mant & 0x3ff) << 13);
  }
  return float_from_bits(bits);
}

float bf16_to_f32(uint16_t b) { return float_from_bits(static_cast<uint32_t>(b) << 16); }

uint16_t f32_to_bf16(float f) {
  uint32_t x = bits_from_float(f);
  if ((x & 0x7fffffff) > 0x7f800000) return static_cast<uint16_t>((x >> 16) | 0x40);  // quiet NaN
  x += 0x7fff + ((x >> 16) & 1);
  return static_cast<uint16_t>(x >> 16);
}

uint16_t f32_to_f16(float f) {
  const uint32_t x = bits_from_float(f);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000);
  const uint32_t ax = x & 0x7fffffff;
  if (ax > 0x7f800000) return sign | 0x7e00 | static_cast<uint16_t>((ax >> 13) & 0x3ff);  // NaN, quiet
  if (ax >= 0x477ff000) return sign | 0x7c00;  // >= 65520 rounds to inf
  if (ax >= 0x38800000) {                        // normal f16 range (>= 2^-14)
    uint32_t r = ax - (112u << 23);              // rebias
    r += 0xfff + ((r >> 13) & 1);                // round to nearest even
    return sign | static_cast<uint16_t>(r >> 13);
  }
  if (ax < 0x33000000) return sign;  // < 2^-25 rounds to 0 (2^-25 itself is a tie to even 0)
  // Subnormal: value / 2^-24 rounded to nearest even.
  const uint32_t e = ax >> 23;
  const uint32_t m = (ax & 0x7fffff) | 0x800000;
  const uint32_t shift = 126 - e;  // 14..24 for e in 102..112... (value = m * 2^(e-150))
  // value / 2^-24 = m * 2^(e - 126)
  uint32_t q = m >> shift;
  const uint32_t rem = m & ((1u << shift) - 1);
  const uint32_t half = 1u << (shift - 1);
  if (rem > half || (rem == half && (q & 1))) q++;
  return sign | static_cast<uint16_t>(q);
}

void convert_to_f32(const TensorView& view, float* out) {
  if (!view.data && view.nbytes)
    throw_format_error(view.file + ": tensor " + quoted(view.name) + " was released");
  const size_t n = static_cast<size_t>(view.numel());
  const uint8_t* src = static_cast<const uint8_t*>(view.data);
  switch (view.dtype) {
    case DType::F32:
      if (n) std::memcpy(out, src, n * 4);
      return;
    case DType::F16:
      if (cpu_features().has_avx2()) {
        cpu::f16_to_f32_avx2(src, out, n);
        return;
      }
      for (size_t i = 0; i < n; i++) {
        uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        out[i] = f16_to_f32(h);
      }
      return;
    case DType::BF16:
      for (size_t i = 0; i < n; i++) {
        uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        out[i] = bf16_to_f32(h);
      }
      return;
    default:
      throw_format_error(view.file + ": tensor " + quoted(view.name) + " has dtype " + dtype_name(view.dtype) +
                         "; weights must be F32, F16 or BF16");
  }
}

}  // namespace gpt2::model
