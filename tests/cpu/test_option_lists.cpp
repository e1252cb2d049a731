// The GPU commands' number lists (tools/streamfusion/gpu/option_lists.h): what they take, and what they refuse
// with the option's name and the offending item (before any GPU starts; once an exception after the ranks met).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "option_lists.h"

namespace sf::cli {
namespace {

TEST(OptionLists, CountsAreWholeNumbersOfAtLeastTheMinimum) {
  Result<std::vector<int64_t>> ok = parse_counts("-S/--seq", {"4096", "16384", "1"}, 1);
  ASSERT_TRUE(ok.is_ok()) << ok.status().to_string();
  EXPECT_EQ(*ok, (std::vector<int64_t>{4096, 16384, 1}));
  for (const char* bad : {"abc", "12x", "0", "-4", "", "4096.5", "99999999999999999999"}) {
    Result<std::vector<int64_t>> r = parse_counts("-S/--seq", {"4096", bad}, 1);
    ASSERT_FALSE(r.is_ok()) << bad;
    EXPECT_EQ(r.status().code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find("-S/--seq takes whole numbers of at least 1 (a comma list), found '" +
                                        std::string(bad) + "'"),
              std::string::npos)
        << r.status().message();
  }
  EXPECT_FALSE(parse_counts("-S/--seq", {}, 1).is_ok());  // nothing to run is an error too
}

TEST(OptionLists, RatesAreFiniteAndAboveZero) {
  Result<std::vector<double>> ok = parse_rates("--gbps", {"50", "6.25", "1e2"});
  ASSERT_TRUE(ok.is_ok()) << ok.status().to_string();
  EXPECT_EQ(*ok, (std::vector<double>{50.0, 6.25, 100.0}));
  for (const char* bad : {"abc", "0", "-5", "nan", "inf", "", "50GB", "1e999"}) {
    Result<std::vector<double>> r = parse_rates("--gbps", {bad});
    ASSERT_FALSE(r.is_ok()) << bad;
    EXPECT_NE(r.status().message().find("--gbps takes numbers above 0 (a comma list), found '" + std::string(bad) +
                                        "'"),
              std::string::npos)
        << r.status().message();
  }
}

}  // namespace
}  // namespace sf::cli
