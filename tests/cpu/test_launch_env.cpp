// Where a process sits in the job, from its launcher's environment (src/backends/gpu_runtime/launch_env.cpp):
// torchrun and `streamfusion launch` (RANK, WORLD_SIZE, LOCAL_*), Open MPI's mpirun and Slurm's srun, on one host
// or several (MASTER_ADDR then names rank 0's host). Plain C++: the multi-node cases that no GPU host here can run,
// and bad variables, which must be errors naming them, never a process that quietly starts as a world of one.
#include <gtest/gtest.h>

#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "../scoped_env.h"
#include "backends/gpu_runtime/launch_env.h"
#include "backends/gpu_runtime/slurm_env.h"

namespace sf::gpu {
namespace {

using test::ScopedEnv;

// Every variable read_launch_env reads, unset for the test's scope and then set as given.
class LaunchVars {
 public:
  explicit LaunchVars(const std::vector<std::pair<const char*, const char*>>& set) {
    for (const char* name : {"RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT",
                             "TORCHELASTIC_RUN_ID", "TORCHELASTIC_USE_AGENT_STORE", "OMPI_COMM_WORLD_RANK",
                             "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_SIZE",
                             "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID", "SLURM_NNODES", "SF_LAUNCH_ID",
                             "PMIX_NAMESPACE", "OMPI_MCA_ess_base_jobid", "SLURM_JOB_ID", "SLURM_STEP_ID",
                             "SLURM_NODEID", "SLURM_STEP_TASKS_PER_NODE", "SLURM_TASKS_PER_NODE", "SLURM_STEP_NODELIST",
                             "SLURM_JOB_NODELIST", "SLURM_NODELIST", "SLURMD_NODENAME"})
      vars_.push_back(std::make_unique<ScopedEnv>(name, nullptr));
    for (const auto& [name, value] : set) vars_.push_back(std::make_unique<ScopedEnv>(name, value));
  }

 private:
  std::vector<std::unique_ptr<ScopedEnv>> vars_;  // put back in reverse order of setting
};

std::string error_of(const Result<LaunchInfo>& r) { return r.is_ok() ? "(no error)" : r.status().message(); }

TEST(LaunchEnv, NoLauncherIsOneProcess) {
  LaunchVars vars({});
  const Result<LaunchInfo> r = read_launch_env();
  ASSERT_TRUE(r.is_ok()) << error_of(r);
  EXPECT_EQ(r->rank, 0);
  EXPECT_EQ(r->world_size, 1);
  EXPECT_EQ(r->source, "none");
}

TEST(LaunchEnv, TorchrunOnTwoHosts) {
  LaunchVars vars({{"RANK", "5"}, {"WORLD_SIZE", "8"}, {"LOCAL_RANK", "1"}, {"LOCAL_WORLD_SIZE", "4"},
                   {"MASTER_ADDR", "node0"}, {"MASTER_PORT", "29600"}, {"TORCHELASTIC_RUN_ID", "job"}});
  const Result<LaunchInfo> r = read_launch_env();
  ASSERT_TRUE(r.is_ok()) << error_of(r);
  EXPECT_EQ(r->rank, 5);
  EXPECT_EQ(r->world_size, 8);
  EXPECT_EQ(r->local_rank, 1);
  EXPECT_EQ(r->local_world_size, 4);
  EXPECT_EQ(r->master_addr, "node0");
  EXPECT_EQ(r->master_port, 29600);
  EXPECT_EQ(r->source, "torchrun");
}

TEST(LaunchEnv, TorchrunsAgentStoreMovesOursBesideIt) {
  LaunchVars vars({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_PORT", "40001"}, {"TORCHELASTIC_RUN_ID", "abc"},
                   {"TORCHELASTIC_USE_AGENT_STORE", "True"}});
  const Result<LaunchInfo> r = read_launch_env();
  ASSERT_TRUE(r.is_ok()) << error_of(r);
  EXPECT_EQ(r->master_port, 40001);
  // Same parity as torchrun's own port (a listening socket's, where outgoing connections take the other).
  EXPECT_EQ(r->store_ports, (std::vector<int>{40003, 40005, 40007, 40009}));
  EXPECT_EQ(r->job, "torchrun abc");
  EXPECT_EQ(store_ports_text(r.value()), "40003 (or 40005, 40007, 40009)");
  {
    LaunchVars near_top({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_PORT", "65531"},
                         {"TORCHELASTIC_USE_AGENT_STORE", "True"}});
    const Result<LaunchInfo> t = read_launch_env();
    ASSERT_TRUE(t.is_ok()) << error_of(t);
    EXPECT_EQ(t->store_ports, (std::vector<int>{65533, 65535}));
  }
  LaunchVars last({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_PORT", "65535"},
                   {"TORCHELASTIC_USE_AGENT_STORE", "True"}});
  EXPECT_NE(error_of(read_launch_env()).find("MASTER_PORT 65535 leaves no port above it for ours"),
            std::string::npos);
}

// Every launcher's name for the job, which its ranks greet the store with (two jobs on one port stay apart).
TEST(LaunchEnv, EachLaunchersJobName) {
  struct Case {
    std::vector<std::pair<const char*, const char*>> vars;
    const char* job;
  };
  const std::vector<Case> cases = {
      {{{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"SF_LAUNCH_ID", "123-456"}}, "streamfusion launch 123-456"},
      {{{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"TORCHELASTIC_RUN_ID", "r1"}}, "torchrun r1"},
      {{{"OMPI_COMM_WORLD_RANK", "0"}, {"OMPI_COMM_WORLD_SIZE", "2"}, {"PMIX_NAMESPACE", "841613313"},
        {"OMPI_MCA_ess_base_jobid", "841613313"}},
       "Open MPI 841613313"},
      {{{"OMPI_COMM_WORLD_RANK", "0"}, {"OMPI_COMM_WORLD_SIZE", "2"}, {"OMPI_MCA_ess_base_jobid", "77"}},
       "Open MPI job 77"},
      {{{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "2"}, {"SLURM_JOB_ID", "4242"}, {"SLURM_STEP_ID", "3"}},
       "Slurm 4242.3"},
      {{{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "2"}, {"SLURM_JOB_ID", "4242"}}, "Slurm 4242.0"},
      {{{"RANK", "0"}, {"WORLD_SIZE", "2"}}, ""},  // set by hand: nothing names the job
      {{{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"PMIX_NAMESPACE", "x"}}, ""},  // not Open MPI's ranks
  };
  for (const Case& c : cases) {
    LaunchVars vars(c.vars);
    const Result<LaunchInfo> r = read_launch_env();
    ASSERT_TRUE(r.is_ok()) << error_of(r);
    EXPECT_EQ(r->job, c.job);
  }
}

TEST(LaunchEnv, OtherLaunchersServeOnMasterPortAlone) {
  LaunchVars vars({{"RANK", "1"}, {"WORLD_SIZE", "2"}, {"MASTER_PORT", "29600"}});
  const Result<LaunchInfo> r = read_launch_env();
  ASSERT_TRUE(r.is_ok()) << error_of(r);
  EXPECT_EQ(r->store_ports, (std::vector<int>{29600}));
  EXPECT_EQ(r->job, "");
  EXPECT_EQ(store_ports_text(r.value()), "29600");
}

TEST(LaunchEnv, OpenMpiAndSlurmOnTwoHosts) {
  {
    LaunchVars vars({{"OMPI_COMM_WORLD_RANK", "3"}, {"OMPI_COMM_WORLD_SIZE", "4"}, {"OMPI_COMM_WORLD_LOCAL_RANK", "1"},
                     {"OMPI_COMM_WORLD_LOCAL_SIZE", "2"}, {"MASTER_ADDR", "node0"}});
    const Result<LaunchInfo> r = read_launch_env();
    ASSERT_TRUE(r.is_ok()) << error_of(r);
    EXPECT_EQ(r->source, "Open MPI");
    EXPECT_EQ(r->rank, 3);
    EXPECT_EQ(r->local_rank, 1);
    EXPECT_EQ(r->local_world_size, 2);
  }
  {
    LaunchVars vars({{"SLURM_PROCID", "6"}, {"SLURM_NTASKS", "8"}, {"SLURM_LOCALID", "2"}, {"SLURM_NNODES", "2"},
                     {"MASTER_ADDR", "node0"}});
    const Result<LaunchInfo> r = read_launch_env();
    ASSERT_TRUE(r.is_ok()) << error_of(r);
    EXPECT_EQ(r->source, "Slurm");
    EXPECT_EQ(r->rank, 6);
    EXPECT_EQ(r->local_rank, 2);
    EXPECT_EQ(r->local_world_size, 4);
  }
  {  // torchrun under srun: torchrun's variables win
    LaunchVars vars({{"RANK", "1"}, {"WORLD_SIZE", "2"}, {"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "1"}});
    const Result<LaunchInfo> r = read_launch_env();
    ASSERT_TRUE(r.is_ok()) << error_of(r);
    EXPECT_EQ(r->rank, 1);
    EXPECT_EQ(r->source, "RANK/WORLD_SIZE");
  }
  {  // a Slurm allocation's own shell: SLURM_NTASKS without SLURM_PROCID is no launcher
    LaunchVars vars(std::vector<std::pair<const char*, const char*>>{{"SLURM_NTASKS", "8"}});
    const Result<LaunchInfo> r = read_launch_env();
    ASSERT_TRUE(r.is_ok()) << error_of(r);
    EXPECT_EQ(r->world_size, 1);
  }
}

TEST(SlurmEnv, FirstHostOfAHostList) {
  const auto first = [](const std::string& list) {
    const Result<std::string> r = slurm_first_host("SLURM_STEP_NODELIST", list);
    return r.is_ok() ? r.value() : "error: " + r.status().message();
  };
  EXPECT_EQ(first("node7"), "node7");
  EXPECT_EQ(first("gpu[001-004,010],login1"), "gpu001");
  EXPECT_EQ(first("a1,b2"), "a1");
  EXPECT_EQ(first("rack[2-3]-n[07,09]"), "rack2-n07");
  EXPECT_EQ(first("dgx-[5]"), "dgx-5");
  EXPECT_EQ(first("gpu[001-004"),
            "error: launcher environment: SLURM_STEP_NODELIST 'gpu[001-004' is not a Slurm host list (a '[' without "
            "its ']')");
  EXPECT_NE(first("gpu]1[").find("a ']' without its '['"), std::string::npos);
  EXPECT_NE(first("gpu[x-y]").find("a range that does not start with a number"), std::string::npos);
  EXPECT_NE(first(",a").find("no host before the first comma"), std::string::npos);
}

TEST(SlurmEnv, TasksOnANode) {
  const auto tasks = [](const std::string& list, int node) {
    const Result<int> r = slurm_tasks_on_node("SLURM_STEP_TASKS_PER_NODE", list, node);
    return r.is_ok() ? std::to_string(r.value()) : "error: " + r.status().message();
  };
  EXPECT_EQ(tasks("4", 0), "4");
  EXPECT_EQ(tasks("4(x2),3", 0), "4");
  EXPECT_EQ(tasks("4(x2),3", 1), "4");
  EXPECT_EQ(tasks("4(x2),3", 2), "3");
  EXPECT_EQ(tasks("2,1(x3),8", 4), "8");
  EXPECT_EQ(tasks("4(x2),3", 3),
            "error: launcher environment: SLURM_STEP_TASKS_PER_NODE '4(x2),3' names 3 nodes, but this is node 3 "
            "(SLURM_NODEID)");
  for (const char* bad : {"", "x", "4(2)", "4(x)", "4(x2", "4,,3", "(x2)", "4,", "-1"})
    EXPECT_NE(tasks(bad, 0).find("is not a list of task counts like 4(x2),3"), std::string::npos) << bad;
}

// srun alone on several nodes: MASTER_ADDR from the step's first node, the local size from this node's tasks.
TEST(LaunchEnv, SrunAloneOnSeveralNodes) {
  {
    LaunchVars vars({{"SLURM_PROCID", "6"}, {"SLURM_NTASKS", "8"}, {"SLURM_LOCALID", "2"}, {"SLURM_NNODES", "2"},
                     {"SLURM_NODEID", "1"}, {"SLURM_STEP_TASKS_PER_NODE", "4(x2)"},
                     {"SLURM_STEP_NODELIST", "gpu[001-002]"}, {"SLURM_JOB_ID", "4242"}});
    const Result<LaunchInfo> r = read_launch_env();
    ASSERT_TRUE(r.is_ok()) << error_of(r);
    EXPECT_EQ(r->master_addr, "gpu001");
    EXPECT_EQ(r->local_world_size, 4);
    EXPECT_EQ(r->job, "Slurm 4242.0");
    EXPECT_EQ(r->source, "Slurm (MASTER_ADDR: the first node of SLURM_STEP_NODELIST)");
  }
  {  // six tasks as 4 + 2: the second node's local size is 2 (spread evenly it would read 3)
    LaunchVars vars({{"SLURM_PROCID", "5"}, {"SLURM_NTASKS", "6"}, {"SLURM_LOCALID", "1"}, {"SLURM_NNODES", "2"},
                     {"SLURM_NODEID", "1"}, {"SLURM_TASKS_PER_NODE", "4,2"}, {"SLURM_JOB_NODELIST", "a,b"}});
    const Result<LaunchInfo> r = read_launch_env();
    ASSERT_TRUE(r.is_ok()) << error_of(r);
    EXPECT_EQ(r->local_world_size, 2);
    EXPECT_EQ(r->master_addr, "a");
  }
  {  // a MASTER_ADDR given wins
    LaunchVars vars({{"SLURM_PROCID", "6"}, {"SLURM_NTASKS", "8"}, {"SLURM_LOCALID", "2"}, {"SLURM_NNODES", "2"},
                     {"SLURM_STEP_NODELIST", "gpu[001-002]"}, {"MASTER_ADDR", "10.0.0.7"}});
    const Result<LaunchInfo> r = read_launch_env();
    ASSERT_TRUE(r.is_ok()) << error_of(r);
    EXPECT_EQ(r->master_addr, "10.0.0.7");
    EXPECT_EQ(r->source, "Slurm");
  }
  char host[256] = {0};
  ::gethostname(host, sizeof host - 1);
  const std::string here = std::string(host).substr(0, std::string(host).find('.'));
  {  // rank 0 on the step's first node
    const std::string list = here + ",zz-other-node";
    LaunchVars vars({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "2"}, {"SLURM_NNODES", "2"},
                     {"SLURM_STEP_NODELIST", list.c_str()}});
    const Result<LaunchInfo> r = read_launch_env();
    ASSERT_TRUE(r.is_ok()) << error_of(r);
    EXPECT_EQ(r->master_addr, here);
  }
  {  // rank 0 elsewhere (a distribution that does not put task 0 on the first node)
    LaunchVars vars({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "2"}, {"SLURM_NNODES", "2"},
                     {"SLURM_STEP_NODELIST", "zz-not-this-host[1-2]"}});
    EXPECT_EQ(error_of(read_launch_env()),
              "launcher environment (Slurm): without MASTER_ADDR the store is on the step's first node, "
              "zz-not-this-host1 (SLURM_STEP_NODELIST), but rank 0 runs on " + std::string(host) +
                  "; set MASTER_ADDR to rank 0's host");
  }
  {  // Slurm's name for rank 0's node, where it differs from the host's own name
    LaunchVars vars({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "2"}, {"SLURM_NNODES", "2"},
                     {"SLURM_STEP_NODELIST", "n[1-2]"}, {"SLURMD_NODENAME", "n1"}});
    const Result<LaunchInfo> r = read_launch_env();
    ASSERT_TRUE(r.is_ok()) << error_of(r);
    EXPECT_EQ(r->master_addr, "n1");
  }
  {
    LaunchVars vars({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "2"}, {"SLURM_NNODES", "2"},
                     {"SLURM_STEP_NODELIST", "n[1-2]"}, {"SLURMD_NODENAME", "n2"}});
    EXPECT_NE(
        error_of(read_launch_env()).find("the step's first node, n1 (SLURM_STEP_NODELIST), but rank 0 runs on n2"),
        std::string::npos);
  }
  {  // neither
    LaunchVars vars({{"SLURM_PROCID", "1"}, {"SLURM_NTASKS", "2"}, {"SLURM_LOCALID", "0"}, {"SLURM_NNODES", "2"}});
    EXPECT_NE(error_of(read_launch_env()).find("neither MASTER_ADDR nor SLURM_STEP_NODELIST is set"),
              std::string::npos);
  }
}

// Bad or half-set variables are errors that name them, not a world of one.
TEST(LaunchEnv, BadVariablesAreErrorsThatNameThem) {
  const struct {
    std::vector<std::pair<const char*, const char*>> vars;
    const char* message;
  } cases[] = {
      {{{"RANK", "abc"}, {"WORLD_SIZE", "4"}}, "RANK must be an integer, found 'abc'"},
      {{{"RANK", "1"}, {"WORLD_SIZE", "4x"}}, "WORLD_SIZE must be an integer, found '4x'"},
      {{{"RANK", "1"}}, "RANK is set but WORLD_SIZE is not"},
      {{{"WORLD_SIZE", "4"}}, "WORLD_SIZE is set but RANK is not"},
      {{{"OMPI_COMM_WORLD_RANK", "2"}}, "OMPI_COMM_WORLD_RANK is set but OMPI_COMM_WORLD_SIZE is not"},
      {{{"RANK", "4"}, {"WORLD_SIZE", "4"}}, "rank 4 is not in [0, world size 4)"},
      {{{"RANK", "1"}, {"WORLD_SIZE", "4"}, {"LOCAL_RANK", "2"}, {"LOCAL_WORLD_SIZE", "2"}},
       "local rank 2 is not in [0, local size 2)"},
      {{{"RANK", "1"}, {"WORLD_SIZE", "4"}, {"LOCAL_RANK", "one"}}, "LOCAL_RANK must be an integer, found 'one'"},
      {{{"RANK", "1"}, {"WORLD_SIZE", "4"}, {"LOCAL_RANK", "1"}, {"LOCAL_WORLD_SIZE", "2"}},
       "4 ranks over several hosts but MASTER_ADDR is not set"},
      {{{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_PORT", "70000"}}, "MASTER_PORT 70000 is not a port"},
      {{{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_PORT", "http"}}, "MASTER_PORT must be an integer, found 'http'"},
      {{{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "2"}, {"SLURM_NNODES", "two"}},
       "SLURM_NNODES must be an integer, found 'two'"},
      {{{"RANK", "99999999999"}, {"WORLD_SIZE", "4"}}, "RANK must be an integer, found '99999999999'"},
  };
  for (const auto& c : cases) {
    LaunchVars vars(c.vars);
    const std::string error = error_of(read_launch_env());
    EXPECT_NE(error.find(c.message), std::string::npos) << "expected '" << c.message << "', got: " << error;
  }
}

}  // namespace
}  // namespace sf::gpu
