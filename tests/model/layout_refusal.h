#pragma once
// The field check_layout names when it refuses a layout ("" when it is legal), and that the fast
// legality test used by search agrees with it either way.
#include "model/input_error.h"
#include "model/layout.h"

#include <gtest/gtest.h>

#include <string>

namespace palmsim {

inline std::string field_of_error(const Layout& l, const ModelSpec& m, int64_t chips, int64_t batch) {
  try {
    check_layout(l, m, chips, batch);
  } catch (const InputError& e) {
    EXPECT_FALSE(layout_is_legal(l, m, chips, batch));
    return e.field();
  }
  EXPECT_TRUE(layout_is_legal(l, m, chips, batch));
  return "";
}

}  // namespace palmsim
