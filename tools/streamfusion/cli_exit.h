// How both binaries (streamfusion, streamfusion-gpu) turn a command line into an exit code.
#pragma once

#include <CLI/CLI.hpp>

namespace sf::cli {

// Parses the command line, which runs the chosen subcommand. Returns `done` when it finished, the code of a
// CLI::RuntimeError a command threw, 0 for --help, and 2 for a bad command line, as for every other bad input
// (CLI11's own codes would differ by kind of mistake).
inline int parse_and_run(CLI::App& app, int argc, char** argv, int (*done)()) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::RuntimeError& e) {
    return e.get_exit_code();
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;  // app.exit prints the message, or the help
  }
  return done();
}

}  // namespace sf::cli
