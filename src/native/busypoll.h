// tapbridge_native: adaptive busy-polling after a receive batch (see busypoll.cc).
#pragma once

#include "common.h"

namespace tb {

// Arms (or extends) the busy-poll window; a no-op when busy_poll_us is 0. Called after each batch.
void BusyPollKick();
void InitBusyPoll(Napi::Env env, Napi::Object exports);

}  // namespace tb
