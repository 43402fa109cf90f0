{
  # One binary for every x86-64: baseline code in the main target, AVX2 and AVX-512
  # kernels in their own static libraries (files *_avx2.cc, *_avx512.cc), chosen at run
  # time from CPUID. Never -march=native. CUDA is never linked here: see cuda/.
  "target_defaults": {
    "cflags!": ["-fno-exceptions"],
    "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
    "cflags": ["-O3", "-fPIC", "-fvisibility=hidden", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-missing-field-initializers"],
    "cflags_cc": ["-std=c++20", "-fexceptions"],
    "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")", "native"],
    # SWALLOW_UNTHROWABLE: a worker_thread terminated while in a native call makes napi_throw
    # fail; without it node-addon-api rethrows in C++ and the whole process aborts.
    "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED", "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS"]
  },
  "targets": [
    {
      "target_name": "gpt2_avx2",
      "type": "static_library",
      "cflags": ["-mavx2", "-mfma", "-mf16c"],
      "sources": ["<!@(node scripts/gyp-sources.mjs --only _avx2.cc native/cpu native/tokenizer native/core)"]
    },
    {
      "target_name": "gpt2_avx512",
      "type": "static_library",
      "cflags": ["-mavx2", "-mfma", "-mf16c", "-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq", "-mavx512bf16", "-mamx-tile", "-mamx-bf16"],
      "sources": ["<!@(node scripts/gyp-sources.mjs --only _avx512.cc native/cpu native/tokenizer native/core)"]
    },
    {
      "target_name": "gpt2",
      "dependencies": [
        "<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except",
        "gpt2_avx2",
        "gpt2_avx512"
      ],
      # *_reference.cc: test-only reference versions (scripts/native-test.mjs links them).
      "sources": ["<!@(node scripts/gyp-sources.mjs --skip _avx2.cc --skip _avx512.cc --skip _reference.cc native/addon native/core native/tokenizer native/model native/engine native/cpu)"],
      "libraries": ["-ldl", "-lpthread"]
    }
  ]
}
