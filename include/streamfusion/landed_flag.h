// LandedFlag: a word in device memory that reaches a value once some transfer's data has landed.
//
// A GPU Comm can hand one out for a transfer (Comm::landed_flag) so that an attention call that reads the data
// is issued without its stream waiting for the transfer: the kernel polls the word before it loads the first
// tile of that K/V chunk (KVChunk::ready). A call then starts on the chunks that are there while the last ones
// still land, instead of idling until all have (bench/sp/TRACES.md, session 20: 0.06 ms of a 1.5 ms 1x4 layer).
#pragma once

#include <cstdint>

namespace sf {

struct LandedFlag {
  const uint32_t* word = nullptr;  // null: the data is there when the call starts
  uint32_t value = 0;              // landed once (int32_t)(*word - value) >= 0 (the words count up and wrap)
  bool pending() const { return word != nullptr; }
};

}  // namespace sf
