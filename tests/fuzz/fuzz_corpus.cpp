// The trainer's corpus loader and tokenizer: the input is one fortune file (documents separated by
// lines holding only '%'), read from a folder as `train` reads it, then encoded with a SentencePiece
// model trained once on the seed text at start-up, and cut into training sequences.
#include "kernels/text_corpus.h"
#include "tests/fuzz/fuzz_input.h"

#include <filesystem>
#include <fstream>

namespace {

std::string folder() {
  static const std::string dir = [] {
    const std::string d = "/tmp/palmsim-fuzz-corpus-" + std::to_string(getpid());
    std::filesystem::create_directories(d + "/text");
    return d;
  }();
  return dir;
}

// A tokenizer model trained once (SentencePiece training takes seconds; encoding is what is fuzzed).
const std::string& tokenizer_prefix() {
  static const std::string prefix = [] {
    std::vector<std::string> documents;
    for (int i = 0; i < 200; ++i)
      documents.push_back("Fortune number " + std::to_string(i) + ": the quick brown fox jumps over the lazy dog, " +
                          "and a penny saved is a penny earned. " + std::string(size_t(i % 7), '!'));
    const std::string p = folder() + "/tokenizer";
    (void)palmsim::tokenize_corpus(documents, p, 256, 0.05);
    return p;
  }();
  return prefix;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& prefix = tokenizer_prefix();
  {
    std::ofstream out(folder() + "/text/fortunes", std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), std::streamsize(size));
  }
  palmsim::fuzz::refusal_allowed([&] {
    const auto documents = palmsim::read_fortune_documents(folder() + "/text");
    const auto corpus = palmsim::tokenize_corpus(documents, prefix, 256, 0.05);
    if (corpus.train.size() > 9) {
      palmsim::SequenceSampler sampler(corpus.train, 8, 1);
      std::vector<int32_t> tokens(8), targets(8);
      for (int64_t i = 0; i < sampler.sequences() && i < 4; ++i) sampler.fill(i, tokens.data(), targets.data());
    }
  });
  return 0;
}
