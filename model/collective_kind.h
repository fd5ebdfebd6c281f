#pragma once
// What a collective does; the StepPlan names it, hwmodels prices it.
namespace palmsim {

enum class CollectiveKind { all_reduce, reduce_scatter, all_gather, all_to_all };
const char* to_string(CollectiveKind k);

}  // namespace palmsim
