// ExitNote (src/backends/gpu_runtime/exit_note.h): a process that exits while a note is armed prints it; after the
// note's scope it prints nothing. Death tests: each case runs in a child process that really exits.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>

#include "backends/gpu_runtime/exit_note.h"

namespace sf::gpu {
namespace {

TEST(ExitNote, PrintedWhenTheProcessExitsWhileArmed) {
  EXPECT_EXIT(
      {
        ExitNote note("[rank 3] the library ended the process during its start");
        std::exit(255);
      },
      testing::ExitedWithCode(255), "\\[rank 3\\] the library ended the process during its start");
}

TEST(ExitNote, SilentOnceItsScopeHasEnded) {
  EXPECT_EXIT(
      {
        { ExitNote note("must not print"); }
        std::fputs("after the note", stderr);
        std::exit(7);
      },
      testing::ExitedWithCode(7), "^after the note$");
}

TEST(ExitNote, TheLatestArmedNoteIsPrinted) {
  EXPECT_EXIT(
      {
        { ExitNote first("first step"); }
        ExitNote second("second step");
        std::exit(1);
      },
      testing::ExitedWithCode(1), "^second step\n$");
}

}  // namespace
}  // namespace sf::gpu
