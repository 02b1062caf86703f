// The command line of the apps (cdc-gen, cdc-check, tributary-reset): Abseil
// flags, with the dashed spelling of flag names the usage texts document
// (--create-topics for the flag create_topics). Main thread only.
#pragma once

#include <string>
#include <vector>

namespace tributary {

// Parses argv into the program's ABSL_FLAGs (exiting on --help or a bad
// flag, as absl::ParseCommandLine does) after mapping '-' to '_' in every
// flag's name; returns the positional arguments, argv[0] first.
std::vector<std::string> ParseDashedCommandLine(int argc, char** argv);

}  // namespace tributary
