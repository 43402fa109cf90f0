/work/wt/wte/tmp/wte_bench/embed_bench_test.o: \
 /tmp/wte_bench/embed_bench_test.cc \
 /work/wt/wte/native/core/thread_pool.h \
 /work/wt/wte/native/cpu/embedding.h /work/wt/wte/native/cpu/gemm.h \
 /work/wt/wte/native/cpu/activation.h
