// Core types: dtype conversions, topology and mesh parsing, mesh groups, status messages.
#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "streamfusion/attention_shape.h"
#include "streamfusion/dtype.h"
#include "streamfusion/mesh.h"
#include "streamfusion/status.h"
#include "streamfusion/topology.h"

namespace sf {
namespace {

TEST(DType, Bf16KnownValuesAndRoundTrip) {
  EXPECT_EQ(float_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(float_to_bf16(-2.0f), 0xc000);
  EXPECT_EQ(bf16_to_float(0x3f80), 1.0f);
  // Round to nearest even: 1 + 2^-8 is halfway between 1 and 1 + 2^-7, so it goes to 1.
  EXPECT_EQ(float_to_bf16(1.0f + std::ldexp(1.0f, -8)), 0x3f80);
  EXPECT_EQ(float_to_bf16(1.0f + 3 * std::ldexp(1.0f, -8)), 0x3f82);
  for (uint32_t bits = 0; bits < 0x10000; ++bits) {
    const float f = bf16_to_float(static_cast<uint16_t>(bits));
    if (std::isnan(f)) continue;
    ASSERT_EQ(float_to_bf16(f), bits) << std::hex << bits;
  }
}

TEST(DType, Fp16KnownValuesAndRoundTrip) {
  EXPECT_EQ(float_to_fp16(1.0f), 0x3c00);
  EXPECT_EQ(float_to_fp16(65504.0f), 0x7bff);
  EXPECT_EQ(float_to_fp16(65520.0f), 0x7c00);  // rounds to infinity
  EXPECT_EQ(float_to_fp16(std::ldexp(1.0f, -24)), 0x0001);  // smallest subnormal
  EXPECT_EQ(float_to_fp16(std::ldexp(1.0f, -26)), 0x0000);  // below half of it
  EXPECT_EQ(fp16_to_float(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(fp16_to_float(0xc000), -2.0f);
  for (uint32_t bits = 0; bits < 0x10000; ++bits) {
    const float f = fp16_to_float(static_cast<uint16_t>(bits));
    if (std::isnan(f)) continue;
    ASSERT_EQ(float_to_fp16(f), bits) << std::hex << bits;
  }
}

TEST(DType, ParseNames) {
  DType t;
  EXPECT_TRUE(parse_dtype("bf16", &t));
  EXPECT_EQ(t, DType::kBF16);
  EXPECT_TRUE(parse_dtype("fp16", &t));
  EXPECT_EQ(t, DType::kF16);
  EXPECT_FALSE(parse_dtype("int8", &t));
}

TEST(Topology, ParseAndLinks) {
  Result<Topology> t = Topology::parse("2x4");
  ASSERT_TRUE(t.is_ok());
  EXPECT_EQ(t->world_size(), 8);
  EXPECT_EQ(t->link(0, 3), LinkClass::kIntra);
  EXPECT_EQ(t->link(3, 4), LinkClass::kInter);
  for (const char* bad : {"", "2", "x4", "2x", "0x4", "2x0", "-1x4", "2x4x1", "axb"}) {
    Result<Topology> r = Topology::parse(bad);
    ASSERT_FALSE(r.is_ok()) << bad;
    EXPECT_EQ(r.status().code(), ErrorCode::kInvalidArgument) << bad;
    EXPECT_NE(r.status().message().find("MxN"), std::string::npos) << r.status().message();
  }
}

TEST(AttentionShape, RejectsNonPositiveSizes) {
  EXPECT_TRUE(AttentionShape({1, 10, 24, 128, DType::kBF16}).validate().is_ok());
  for (AttentionShape s : {AttentionShape{0, 10, 24, 128}, AttentionShape{1, 0, 24, 128}, AttentionShape{1, 10, -3, 128},
                           AttentionShape{1, 10, 24, 0}, AttentionShape{1, 10, 24, 512}}) {
    Status st = s.validate();
    EXPECT_EQ(st.code(), ErrorCode::kInvalidArgument) << s.to_string();
    EXPECT_NE(st.message().find("found"), std::string::npos) << st.message();
  }
}

TEST(AttentionShape, EveryRankNeedsAToken) {
  const AttentionShape s{1, 3, 4, 8, DType::kF32};
  EXPECT_TRUE(s.validate_split(1).is_ok());
  EXPECT_TRUE(s.validate_split(3).is_ok());
  const Status st = s.validate_split(4);
  EXPECT_EQ(st.code(), ErrorCode::kInfeasible);
  EXPECT_NE(st.message().find("S=3 is shorter than the 4 GPUs"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("at most 3 GPUs"), std::string::npos) << st.message();
}

TEST(SequenceSplit, CoversEveryTokenOnce) {
  for (int64_t S : {1, 7, 8, 9, 100, 4607})
    for (int P : {1, 3, 8, 16}) {
      int64_t next = 0;
      for (int g = 0; g < P; ++g) {
        EXPECT_EQ(seq_offset(S, P, g), next);
        next += seq_count(S, P, g);
        EXPECT_LE(seq_count(S, P, g) - seq_count(S, P, P - 1), 1);
      }
      EXPECT_EQ(next, S);
    }
}

TEST(Mesh, ParseGroupsAndStrides) {
  Result<Mesh> m = Mesh::parse("T2U2R2", 8);
  ASSERT_TRUE(m.is_ok()) << m.status().to_string();
  EXPECT_EQ(m->stride(LevelKind::kRing), 1);
  EXPECT_EQ(m->stride(LevelKind::kUlysses), 2);
  EXPECT_EQ(m->stride(LevelKind::kTorus), 4);
  EXPECT_EQ(m->group(LevelKind::kTorus, 5), (std::vector<int>{1, 5}));
  EXPECT_EQ(m->group(LevelKind::kUlysses, 5), (std::vector<int>{5, 7}));
  EXPECT_EQ(m->group(LevelKind::kRing, 5), (std::vector<int>{4, 5}));
  EXPECT_EQ(m->index_in(LevelKind::kTorus, 5), 1);
  const Topology t{2, 4};
  EXPECT_TRUE(m->level_across_machines(LevelKind::kTorus, t));
  EXPECT_TRUE(m->level_within_machines(LevelKind::kRing, t));
  EXPECT_TRUE(m->level_within_machines(LevelKind::kUlysses, t));
  // Every rank's coordinates are unique: the levels tile the world.
  std::set<std::tuple<int, int, int>> coords;
  for (int g = 0; g < 8; ++g)
    coords.insert({m->index_in(LevelKind::kTorus, g), m->index_in(LevelKind::kUlysses, g), m->index_in(LevelKind::kRing, g)});
  EXPECT_EQ(coords.size(), 8u);
  EXPECT_EQ(Mesh::parse("u4r1", 4)->to_string(), "U4");
  EXPECT_EQ(Mesh::parse("R1", 1)->to_string(), "R1");
}

TEST(Mesh, RejectsMalformedStrings) {
  struct Bad {
    const char* mesh;
    int world;
    ErrorCode code;
    const char* says;
  };
  for (const Bad& b : {Bad{"", 4, ErrorCode::kInvalidArgument, "empty"},
                       Bad{"X4", 4, ErrorCode::kInvalidArgument, "unexpected 'X'"},
                       Bad{"U", 4, ErrorCode::kInvalidArgument, "degree"},
                       Bad{"U0R4", 4, ErrorCode::kInvalidArgument, "degree"},
                       Bad{"U2U2", 4, ErrorCode::kInvalidArgument, "twice"},
                       Bad{"U2R2", 8, ErrorCode::kInfeasible, "multiply to 4 but there are 8"},
                       Bad{"U4R-1", 4, ErrorCode::kInvalidArgument, "level R needs a degree"}}) {
    Result<Mesh> m = Mesh::parse(b.mesh, b.world);
    ASSERT_FALSE(m.is_ok()) << b.mesh;
    EXPECT_EQ(m.status().code(), b.code) << b.mesh << ": " << m.status().to_string();
    EXPECT_NE(m.status().message().find(b.says), std::string::npos) << m.status().message();
  }
}

TEST(Status, MessagesAndResult) {
  Status s = infeasible("heads (24) must divide by 5");
  EXPECT_FALSE(s.is_ok());
  EXPECT_EQ(s.to_string(), "infeasible: heads (24) must divide by 5");
  Result<int> r = s;
  EXPECT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kInfeasible);
  Result<int> v = 3;
  EXPECT_TRUE(v.is_ok());
  EXPECT_EQ(*v, 3);
}

}  // namespace
}  // namespace sf
