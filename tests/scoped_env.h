// Sets an environment variable for one scope, or unsets it (value null), and puts back what was there: the library
// reads its settings from the environment at every call. Shared by the CPU and the GPU kernel tests.
#pragma once

#include <cstdlib>
#include <optional>
#include <string>

namespace sf::test {

class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value) setenv(name, value, 1);
    else unsetenv(name);
  }
  ~ScopedEnv() {
    if (old_) setenv(name_, old_->c_str(), 1);
    else unsetenv(name_);
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  std::optional<std::string> old_;
};

}  // namespace sf::test
