// Pooling of a sequence's hidden-state rows into one embedding vector, and L2
// normalisation. Plain loops: they run once per text over rows already computed, a
// vanishing share of an embedding's cost next to the forward pass.
#pragma once
#include <cstdint>

#include "model/gpt2_model.h"

namespace gpt2::model {

// out[E] from rows[n, E]: Mean = the average of the n rows (accumulated in double, so
// the result does not depend on summation blocking); First/Last = rows[0] / rows[n - 1].
// Rows is not a pooling (the caller keeps all rows).
void pool_rows(const float* rows, int64_t n, int64_t dim, Pooling pooling, float* out);

// v /= |v|₂ (a zero vector stays zero).
void l2_normalize(float* v, int64_t dim);

}  // namespace gpt2::model
