//! SignalFoundry
