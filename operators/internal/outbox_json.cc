#include "operators/internal/outbox_json.h"

#include <cstdint>

namespace tributary::internal {
namespace {

// Reads 4 hex digits at text[at..at+4).
bool Hex4(std::string_view text, size_t at, uint32_t& value) {
  if (at + 4 > text.size()) return false;
  value = 0;
  for (size_t i = at; i < at + 4; ++i) {
    const char c = text[i];
    uint32_t digit = 0;
    if (c >= '0' && c <= '9') {
      digit = static_cast<uint32_t>(c - '0');
    } else if (c >= 'a' && c <= 'f') {
      digit = static_cast<uint32_t>(c - 'a' + 10);
    } else if (c >= 'A' && c <= 'F') {
      digit = static_cast<uint32_t>(c - 'A' + 10);
    } else {
      return false;
    }
    value = (value << 4) | digit;
  }
  return true;
}

void AppendUtf8(uint32_t code_point, std::string& out) {
  if (code_point < 0x80) {
    out.push_back(static_cast<char>(code_point));
  } else if (code_point < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (code_point >> 6)));
    out.push_back(static_cast<char>(0x80 | (code_point & 0x3F)));
  } else if (code_point < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (code_point >> 12)));
    out.push_back(static_cast<char>(0x80 | ((code_point >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (code_point & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (code_point >> 18)));
    out.push_back(static_cast<char>(0x80 | ((code_point >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((code_point >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (code_point & 0x3F)));
  }
}

absl::Status Bad(const char* what) {
  return absl::InvalidArgumentError(std::string("JSON string: ") + what);
}

}  // namespace

JsonKind KindOf(std::string_view raw) {
  switch (raw.empty() ? 'n' : raw.front()) {
    case '"':
      return JsonKind::kString;
    case '{':
      return JsonKind::kObject;
    case '[':
      return JsonKind::kArray;
    case 't':
    case 'f':
      return JsonKind::kBool;
    case 'n':
      return JsonKind::kNull;
    default:
      return JsonKind::kNumber;
  }
}

absl::Status UnescapeJsonString(std::string_view quoted, std::string& out) {
  out.clear();
  if (quoted.size() < 2 || quoted.front() != '"' || quoted.back() != '"') {
    return Bad("not a quoted string");
  }
  const std::string_view text = quoted.substr(1, quoted.size() - 2);
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '"') return Bad("unescaped quote inside");
    if (static_cast<unsigned char>(c) < 0x20)
      return Bad("raw control character");
    if (c != '\\') {
      out.push_back(c);
      continue;
    }
    if (++i == text.size()) return Bad("ends inside an escape");
    switch (text[i]) {
      case '"':
        out.push_back('"');
        break;
      case '\\':
        out.push_back('\\');
        break;
      case '/':
        out.push_back('/');
        break;
      case 'b':
        out.push_back('\b');
        break;
      case 'f':
        out.push_back('\f');
        break;
      case 'n':
        out.push_back('\n');
        break;
      case 'r':
        out.push_back('\r');
        break;
      case 't':
        out.push_back('\t');
        break;
      case 'u': {
        uint32_t unit = 0;
        if (!Hex4(text, i + 1, unit)) return Bad("bad \\u escape");
        i += 4;
        if (unit >= 0xDC00 && unit <= 0xDFFF) return Bad("lone low surrogate");
        if (unit >= 0xD800 && unit <= 0xDBFF) {
          uint32_t low = 0;
          if (i + 2 >= text.size() || text[i + 1] != '\\' ||
              text[i + 2] != 'u' || !Hex4(text, i + 3, low) || low < 0xDC00 ||
              low > 0xDFFF) {
            return Bad("high surrogate without a low surrogate");
          }
          i += 6;
          unit = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00);
        }
        AppendUtf8(unit, out);
        break;
      }
      default:
        return Bad("unknown escape");
    }
  }
  return absl::OkStatus();
}

}  // namespace tributary::internal
