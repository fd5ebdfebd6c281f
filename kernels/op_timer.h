#pragma once
// Wall time per op under the StepPlan's names ("qkv_proj.fwd", "attention.bwd", "optimizer.opt"),
// summed over a step; what bench-step prints and calibration consumes.
#include <chrono>
#include <map>
#include <string>

namespace palmsim {

class OpTimer {
 public:
  // Times the scope of the returned guard under `name`.
  class Scope {
   public:
    Scope(OpTimer* timer, const char* name) : timer_(timer), name_(name), start_(std::chrono::steady_clock::now()) {}
    ~Scope() {
      if (timer_) timer_->add(name_, std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count());
    }
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

   private:
    OpTimer* timer_;
    const char* name_;
    std::chrono::steady_clock::time_point start_;
  };

  void add(const std::string& name, double seconds) { seconds_[name] += seconds; }
  void clear() { seconds_.clear(); }
  const std::map<std::string, double>& seconds() const { return seconds_; }

 private:
  std::map<std::string, double> seconds_;
};

// A null timer times nothing (ranks other than 0, finite-difference tests).
inline OpTimer::Scope time_op(OpTimer* timer, const char* name) { return OpTimer::Scope(timer, name); }

}  // namespace palmsim
