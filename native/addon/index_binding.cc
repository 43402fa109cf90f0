// SemanticIndex's native search (cpu/similarity.h): scores every row of the index's
// matrix against a query and returns the k best. Small searches run inline; large ones
// on the libuv pool (the dot products then spread over the compute pool), holding a
// reference to the matrix so it stays alive. lib/semantic-index.ts owns the matrix and
// never hands it out or writes rows a running search reads (copy-on-write).
#include <napi.h>

#include <cstring>

#include "addon/addon_data.h"
#include "addon/js_errors.h"
#include "addon/promise_worker.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "cpu/similarity.h"

namespace gpt2::addon {
namespace {

struct SearchResult {
  std::vector<int64_t> rows;
  std::vector<float> scores;
};

SearchResult search(const float* matrix, int64_t rows, int64_t dim, const float* q, int64_t k, int max_threads) {
  std::vector<float> scores(static_cast<size_t>(rows));
  cpu::dot_rows(ThreadPool::shared(), max_threads, matrix, rows, dim, q, scores.data());
  SearchResult r;
  r.rows = cpu::top_k(scores.data(), rows, k);
  for (int64_t i : r.rows) r.scores.push_back(scores[i]);
  return r;
}

Napi::Object to_js(Napi::Env env, const SearchResult& r) {
  Napi::Uint32Array rows = Napi::Uint32Array::New(env, r.rows.size());
  for (size_t i = 0; i < r.rows.size(); i++) rows[i] = static_cast<uint32_t>(r.rows[i]);
  Napi::Float32Array scores = Napi::Float32Array::New(env, r.scores.size());
  if (!r.scores.empty()) std::memcpy(scores.Data(), r.scores.data(), r.scores.size() * sizeof(float));
  Napi::Object o = Napi::Object::New(env);
  o.Set("rows", rows);
  o.Set("scores", scores);
  return o;
}

// similaritySearch(matrix: Float32Array, rows, dim, query: Float32Array, k, async: boolean)
//   -> { rows: Uint32Array, scores: Float32Array } (best first), or a Promise of it.
Napi::Value SimilaritySearch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    auto f32 = [](const Napi::Value& v) {
      return v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == napi_float32_array;
    };
    if (!f32(info[0]) || !f32(info[3])) throw_type_error("similaritySearch: matrix and query must be Float32Arrays");
    if (!info[1].IsNumber() || !info[2].IsNumber() || !info[4].IsNumber())
      throw_type_error("similaritySearch: rows, dim and k must be numbers");
    Napi::Float32Array matrix = info[0].As<Napi::Float32Array>();
    Napi::Float32Array query = info[3].As<Napi::Float32Array>();
    const int64_t rows = info[1].As<Napi::Number>().Int64Value(), dim = info[2].As<Napi::Number>().Int64Value();
    const int64_t k = info[4].As<Napi::Number>().Int64Value();
    if (dim < 1 || rows < 0 || k < 1) throw_range_error("similaritySearch: bad rows, dim or k");
    if (int64_t(query.ElementLength()) != dim)
      throw_range_error("similaritySearch: the query has " + std::to_string(query.ElementLength()) +
                        " dimensions, the index " + std::to_string(dim));
    if (rows > int64_t(matrix.ElementLength()) / dim) throw_range_error("similaritySearch: the matrix is too small");
    if (!info[5].ToBoolean().Value()) return to_js(env, search(matrix.Data(), rows, dim, query.Data(), k, 1));
    auto q = std::make_shared<std::vector<float>>(query.Data(), query.Data() + dim);
    auto keep = std::make_shared<Napi::Reference<Napi::Float32Array>>(Napi::Persistent(matrix));
    const float* data = matrix.Data();
    auto result = std::make_shared<SearchResult>();
    return PromiseWorker::Start(
        env, [=] { *result = search(data, rows, dim, q->data(), k, 0); },
        [result, keep](Napi::Env env) -> Napi::Value {
          keep->Reset();
          return to_js(env, *result);
        });
  });
}

}  // namespace

void InitIndex(Napi::Env env, Napi::Object exports) {
  exports.Set("similaritySearch", Napi::Function::New(env, SimilaritySearch, "similaritySearch"));
}

}  // namespace gpt2::addon
