#pragma once
// The trainer's data: real English text from Debian's `fortunes` package (plain files of documents
// separated by lines holding only '%'), a SentencePiece tokenizer trained on it, documents packed
// back to back with an end-of-document token, every 20th document held out.
#include <cstdint>
#include <string>
#include <vector>

namespace palmsim {

// Documents of every plain fortune file in `dir` (not recursive; index files skipped), in file
// name order. Throws InputError("train.corpus") if there are none.
std::vector<std::string> read_fortune_documents(const std::string& dir);

struct TokenizedCorpus {
  std::vector<int32_t> train, held_out;  // token streams, documents ended by end_of_document
  int32_t end_of_document = 1;
  int vocab = 0;
};

// Trains a BPE SentencePiece model of `vocab` pieces at `model_prefix`.model unless one is there,
// then encodes the documents. Deterministic for the same documents.
TokenizedCorpus tokenize_corpus(const std::vector<std::string>& documents, const std::string& model_prefix,
                                int vocab, double held_out_fraction);

// Cross-entropy (nats/token) of `held_out` under the unigram distribution of `train` (add-one
// smoothed): the bar a language model must beat to have learned more than token frequencies.
double unigram_cross_entropy(const std::vector<int32_t>& train, const std::vector<int32_t>& held_out, int vocab);

// Fixed-length training sequences cut from a token stream, visited in a seeded shuffled order
// that depends only on (seed, global sample index): resuming at a step needs no sampler state.
class SequenceSampler {
 public:
  SequenceSampler(const std::vector<int32_t>& stream, int64_t seq_len, uint64_t seed);
  int64_t sequences() const { return n_; }
  // Sample `index` (counting over epochs): inputs and next-token targets, seq_len each.
  void fill(int64_t index, int32_t* tokens, int32_t* targets);
  // Sequences in stream order, no shuffling (held-out evaluation).
  void fill_in_order(int64_t index, int32_t* tokens, int32_t* targets) const;

 private:
  const std::vector<int32_t>& stream_;
  int64_t seq_, n_;
  uint64_t seed_;
  int64_t epoch_ = -1;
  std::vector<int64_t> order_;
};

}  // namespace palmsim
