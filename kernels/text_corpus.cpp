#include "kernels/text_corpus.h"

#include "model/input_error.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <random>
#include <sstream>

namespace palmsim {

std::vector<std::string> read_fortune_documents(const std::string& dir) {
  namespace fs = std::filesystem;
  if (!fs::is_directory(dir))
    throw InputError("train.corpus", "'" + dir + "' is not a folder (install Debian's `fortunes` with tools/setup.sh)");
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string ext = e.path().extension().string();
    if (e.is_regular_file() && !e.is_symlink() && ext != ".dat" && ext != ".u8") files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  std::vector<std::string> docs;
  for (const auto& f : files) {
    std::ifstream in(f);
    std::string line, doc;
    auto flush = [&] {
      // Collapse whitespace runs: the tokenizer sees one line per document.
      std::istringstream words(doc);
      std::string w, text;
      while (words >> w) text += (text.empty() ? "" : " ") + w;
      if (!text.empty()) docs.push_back(text);
      doc.clear();
    };
    while (std::getline(in, line)) {
      if (line == "%") flush();
      else doc += line + "\n";
    }
    flush();
  }
  if (docs.empty()) throw InputError("train.corpus", "no documents found in '" + dir + "'");
  return docs;
}

TokenizedCorpus tokenize_corpus(const std::vector<std::string>& docs, const std::string& prefix, int vocab,
                                double held_out_fraction) {
  namespace fs = std::filesystem;
  const std::string model_file = prefix + ".model";
  if (!fs::exists(model_file)) {
    const std::string input = prefix + ".corpus.txt";
    {
      std::ofstream out(input);
      for (const auto& d : docs) out << d << "\n";
    }
    // One thread and a fixed seed sentence order make the tokenizer reproducible.
    const auto status = sentencepiece::SentencePieceTrainer::Train(
        "--input=" + input + " --model_prefix=" + prefix + " --vocab_size=" + std::to_string(vocab) +
        " --model_type=bpe --character_coverage=1.0 --unk_id=0 --eos_id=1 --bos_id=-1 --pad_id=-1"
        " --num_threads=1 --minloglevel=2 --max_sentence_length=16384 --shuffle_input_sentence=false");
    fs::remove(input);
    if (!status.ok()) throw InputError("model.vocab", "SentencePiece could not train " + std::to_string(vocab) +
                                                          " pieces on the corpus: " + status.ToString());
  }
  sentencepiece::SentencePieceProcessor sp;
  if (!sp.Load(model_file).ok()) throw InputError("tokenizer", "cannot load '" + model_file + "'");
  if (sp.GetPieceSize() != vocab)
    throw InputError("model.vocab", "the tokenizer in '" + model_file + "' has " + std::to_string(sp.GetPieceSize()) +
                                        " pieces, the model " + std::to_string(vocab));
  TokenizedCorpus c;
  c.vocab = vocab;
  c.end_of_document = sp.eos_id();
  const size_t every = size_t(std::max(2.0, std::round(1.0 / held_out_fraction)));
  std::vector<int> ids;
  for (size_t i = 0; i < docs.size(); ++i) {
    sp.Encode(docs[i], &ids);
    auto& stream = i % every == every - 1 ? c.held_out : c.train;
    stream.insert(stream.end(), ids.begin(), ids.end());
    stream.push_back(c.end_of_document);
  }
  return c;
}

double unigram_cross_entropy(const std::vector<int32_t>& train, const std::vector<int32_t>& held_out, int vocab) {
  std::vector<double> count(size_t(vocab), 1.0);
  for (int32_t t : train) count[size_t(t)] += 1.0;
  const double total = double(train.size()) + vocab;
  double ce = 0;
  for (int32_t t : held_out) ce -= std::log(count[size_t(t)] / total);
  return ce / double(held_out.size());
}

SequenceSampler::SequenceSampler(const std::vector<int32_t>& stream, int64_t seq_len, uint64_t seed)
    : stream_(stream), seq_(seq_len), n_((int64_t(stream.size()) - 1) / seq_len), seed_(seed) {
  if (n_ < 1) throw InputError("model.seq_len", "the corpus holds fewer than one sequence of " + std::to_string(seq_len) + " tokens");
}

void SequenceSampler::fill(int64_t index, int32_t* tokens, int32_t* targets) {
  const int64_t epoch = index / n_;
  if (epoch != epoch_) {
    order_.resize(size_t(n_));
    std::iota(order_.begin(), order_.end(), 0);
    std::mt19937_64 rng(seed_ * 7919ULL + uint64_t(epoch));
    std::shuffle(order_.begin(), order_.end(), rng);
    epoch_ = epoch;
  }
  fill_in_order(order_[size_t(index % n_)], tokens, targets);
}

void SequenceSampler::fill_in_order(int64_t index, int32_t* tokens, int32_t* targets) const {
  const size_t start = size_t((index % n_) * seq_);
  std::copy_n(stream_.begin() + long(start), seq_, tokens);
  std::copy_n(stream_.begin() + long(start) + 1, seq_, targets);
}

}  // namespace palmsim
