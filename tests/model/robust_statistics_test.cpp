// Means, medians and the medians' order-statistic confidence intervals against hand calculation.
#include "model/robust_statistics.h"

#include <gtest/gtest.h>

namespace palmsim {
namespace {

TEST(RobustStatistics, MedianOfOddAndEvenCounts) {
  EXPECT_DOUBLE_EQ(median_of({3, 1, 2}), 2.0);
  EXPECT_DOUBLE_EQ(median_of({4, 1, 3, 2}), 2.5);
  EXPECT_DOUBLE_EQ(median_of({}), 0.0);
}

TEST(RobustStatistics, MeanOfValues) {
  EXPECT_DOUBLE_EQ(mean_of({1, 2, 6}), 3.0);
  EXPECT_DOUBLE_EQ(mean_of({1, 1, 1, 5}), 2.0);  // the median (1) ignores the slow call; the mean does not
  EXPECT_DOUBLE_EQ(mean_of({}), 0.0);
}

TEST(RobustStatistics, MedianIntervalFromOrderStatistics) {
  // n = 7: P(median outside [x(1), x(7)]) = 2 / 2^7, so coverage 1 - 1/64 = 98.4375 %; the next
  // pair [x(2), x(6)] covers 1 - 2 (1 + 7) / 128 = 87.5 %, short of 95 %.
  const MedianInterval seven = median_interval({7, 1, 6, 2, 5, 3, 4});
  EXPECT_DOUBLE_EQ(seven.low, 1);
  EXPECT_DOUBLE_EQ(seven.high, 7);
  EXPECT_DOUBLE_EQ(seven.confidence, 1 - 1.0 / 64);
  // n = 10: [x(2), x(9)] covers 1 - 2 (1 + 10) / 1024 = 97.85 %; [x(3), x(8)] 1 - 2 (1 + 10 + 45)
  // / 1024 = 89.06 %.
  const MedianInterval ten = median_interval({10, 9, 8, 7, 6, 5, 4, 3, 2, 1});
  EXPECT_DOUBLE_EQ(ten.low, 2);
  EXPECT_DOUBLE_EQ(ten.high, 9);
  EXPECT_DOUBLE_EQ(ten.confidence, 1 - 22.0 / 1024);
  // Too few values for 95 %: the range, with the coverage it has (3 values: 1 - 2/8).
  const MedianInterval three = median_interval({2, 3, 1});
  EXPECT_DOUBLE_EQ(three.low, 1);
  EXPECT_DOUBLE_EQ(three.high, 3);
  EXPECT_DOUBLE_EQ(three.confidence, 0.75);
}

}  // namespace
}  // namespace palmsim
