#include "apps/common/command_line.h"

#include <algorithm>

#include "absl/flags/parse.h"

namespace tributary {

std::vector<std::string> ParseDashedCommandLine(int argc, char** argv) {
  std::vector<std::string> args(argv, argv + argc);
  std::vector<char*> normalized;
  for (std::string& arg : args) {
    if (arg.size() > 2 && arg.compare(0, 2, "--") == 0) {
      const size_t end = std::min(arg.find('='), arg.size());
      for (size_t i = 2; i < end; ++i) {
        if (arg[i] == '-') arg[i] = '_';
      }
    }
    normalized.push_back(arg.data());
  }
  std::vector<char*> rest =
      absl::ParseCommandLine(static_cast<int>(normalized.size()), normalized.data());
  return std::vector<std::string>(rest.begin(), rest.end());
}

}  // namespace tributary
