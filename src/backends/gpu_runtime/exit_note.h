// A note for the user if the process exits while the note is armed. Some libraries end the process themselves on a
// failure instead of returning an error: NVSHMEM's initialization calls exit() when no transport reaches every PE
// (measured on 4x H200, session 33: exit code 255, NVSHMEM's own lines only). The caller's error message would then
// never print; an armed note says at least which rank was doing what, and what usually causes it.
// Plain C++, so that CPU tests reach it.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <utility>

namespace sf::gpu {

class ExitNote {
 public:
  explicit ExitNote(std::string text) {
    static std::once_flag registered;
    std::call_once(registered, [] { std::atexit(&ExitNote::print_armed); });
    std::lock_guard<std::mutex> lock(mutex());
    armed() = std::move(text);
  }
  ~ExitNote() {
    std::lock_guard<std::mutex> lock(mutex());
    armed().clear();
  }
  ExitNote(const ExitNote&) = delete;
  ExitNote& operator=(const ExitNote&) = delete;

 private:
  static void print_armed() {
    std::lock_guard<std::mutex> lock(mutex());
    if (!armed().empty()) std::fprintf(stderr, "%s\n", armed().c_str());
  }
  // Never destroyed: exit() runs the static destructors and the atexit hooks in one reverse order, and the hook must
  // find both alive whichever was constructed first.
  static std::mutex& mutex() {
    static auto* m = new std::mutex;
    return *m;
  }
  static std::string& armed() {  // empty: nothing armed
    static auto* text = new std::string;
    return *text;
  }
};

}  // namespace sf::gpu
