// Small binary encoding helpers for the operators' internal records and
// store keys: length-prefixed strings, varints, and fixed big-endian 64-bit
// integers whose byte order equals their numeric order (sign bit flipped).
// Thread-safety: stateless functions; Reader is single-threaded.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace tributary::internal {

inline void PutVarint(std::string& out, uint64_t value) {
  while (value >= 0x80) {
    out.push_back(static_cast<char>(value | 0x80));
    value >>= 7;
  }
  out.push_back(static_cast<char>(value));
}

inline void PutBytes(std::string& out, std::string_view bytes) {
  PutVarint(out, bytes.size());
  out.append(bytes);
}

// A present/absent string: a flag byte, then the bytes when present.
inline void PutOptional(std::string& out, std::optional<std::string_view> bytes) {
  out.push_back(bytes ? 1 : 0);
  if (bytes) PutBytes(out, *bytes);
}

// Big-endian with the sign bit flipped: memcmp order == numeric order.
inline void PutOrderedInt64(std::string& out, int64_t value) {
  uint64_t bits = static_cast<uint64_t>(value) ^ (uint64_t{1} << 63);
  for (int shift = 56; shift >= 0; shift -= 8) {
    out.push_back(static_cast<char>((bits >> shift) & 0xff));
  }
}

inline int64_t GetOrderedInt64(std::string_view bytes) {
  uint64_t bits = 0;
  for (int i = 0; i < 8; ++i) bits = (bits << 8) | static_cast<uint8_t>(bytes[i]);
  return static_cast<int64_t>(bits ^ (uint64_t{1} << 63));
}

// Reads what the Put* functions wrote. Every getter returns false on
// truncated or malformed input and leaves the reader failed.
// Lifetime: string views point into the input given to the constructor.
class Reader {
 public:
  explicit Reader(std::string_view input) : input_(input) {}

  bool Varint(uint64_t& value) {
    value = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (input_.empty()) return Fail();
      uint8_t byte = static_cast<uint8_t>(input_.front());
      input_.remove_prefix(1);
      value |= static_cast<uint64_t>(byte & 0x7f) << shift;
      if ((byte & 0x80) == 0) return true;
    }
    return Fail();
  }
  bool Bytes(std::string_view& bytes) {
    uint64_t size = 0;
    if (!Varint(size) || size > input_.size()) return Fail();
    bytes = input_.substr(0, size);
    input_.remove_prefix(size);
    return true;
  }
  bool Optional(std::optional<std::string_view>& bytes) {
    if (input_.empty()) return Fail();
    char flag = input_.front();
    input_.remove_prefix(1);
    if (flag == 0) {
      bytes.reset();
      return true;
    }
    std::string_view value;
    if (flag != 1 || !Bytes(value)) return Fail();
    bytes = value;
    return true;
  }
  bool Byte(char& byte) {
    if (input_.empty()) return Fail();
    byte = input_.front();
    input_.remove_prefix(1);
    return true;
  }
  bool OrderedInt64(int64_t& value) {
    if (input_.size() < 8) return Fail();
    value = GetOrderedInt64(input_.substr(0, 8));
    input_.remove_prefix(8);
    return true;
  }
  bool done() const { return input_.empty(); }
  bool failed() const { return failed_; }

 private:
  bool Fail() {
    failed_ = true;
    return false;
  }
  std::string_view input_;
  bool failed_ = false;
};

}  // namespace tributary::internal
