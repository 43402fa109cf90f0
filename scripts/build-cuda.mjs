// Builds the optional CUDA plugin (cuda/) when nvcc is present; otherwise says so in
// one line and succeeds. Placeholder until the plugin lands.
console.log('gpt2-node: CUDA plugin not built yet; running on the CPU');
