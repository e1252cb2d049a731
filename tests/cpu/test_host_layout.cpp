// The topology a GPU run asks for against the hosts its ranks run on (src/backends/gpu_runtime/host_layout.h): on
// one host every topology goes (machines beyond one are emulated); on several, the machines must be the hosts, and a
// topology that disagrees is refused with both ranks and hosts named. Plain C++: the multi-host cases that no GPU
// host here can run.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "backends/gpu_runtime/host_layout.h"

namespace sf::gpu {
namespace {

Topology topo(int m, int n) { return Topology{m, n}; }

std::string error_of(const Status& s) { return s.is_ok() ? "(no error)" : s.message(); }

TEST(HostLayout, OneHostTakesEveryTopology) {
  const std::vector<std::string> one(4, "node0");
  EXPECT_FALSE(spans_hosts(one));
  for (const Topology& t : {topo(1, 4), topo(2, 2), topo(4, 1)})
    EXPECT_TRUE(check_machines_on_hosts(t, one).is_ok()) << t.to_string();
}

TEST(HostLayout, SeveralHostsMustBeTheMachines) {
  const std::vector<std::string> two = {"a", "a", "a", "a", "b", "b", "b", "b"};
  EXPECT_TRUE(spans_hosts(two));
  EXPECT_TRUE(check_machines_on_hosts(topo(2, 4), two).is_ok());
  const Status whole = check_machines_on_hosts(topo(1, 8), two);
  EXPECT_EQ(whole.code(), ErrorCode::kInfeasible);
  EXPECT_NE(error_of(whole).find("topology 1x8 puts ranks 0 (host a) and 4 (host b) in machine 0, but ranks on "
                                 "different hosts have no NVLink (on a job that spans hosts the machines are its "
                                 "hosts: 2 hosts here; emulated machines need a job on one host)"),
            std::string::npos)
      << error_of(whole);
  const Status split = check_machines_on_hosts(topo(4, 2), two);
  EXPECT_EQ(split.code(), ErrorCode::kInfeasible);
  EXPECT_NE(error_of(split).find("topology 4x2 puts ranks 0 and 2 of host a in machines 0 and 1"), std::string::npos)
      << error_of(split);
}

TEST(HostLayout, RanksNotNumberedHostByHostFitNoTopology) {
  const std::vector<std::string> interleaved = {"a", "b", "a", "b"};
  for (const Topology& t : {topo(1, 4), topo(2, 2), topo(4, 1)})
    EXPECT_EQ(check_machines_on_hosts(t, interleaved).code(), ErrorCode::kInfeasible) << t.to_string();
}

TEST(HostLayout, ATopologyOfAnotherSizeIsAnError) {
  const Status s = check_machines_on_hosts(topo(2, 2), std::vector<std::string>(8, "a"));
  EXPECT_EQ(s.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(error_of(s).find("topology 2x2 has 4 GPUs but the job has 8 ranks"), std::string::npos) << error_of(s);
}

}  // namespace
}  // namespace sf::gpu
