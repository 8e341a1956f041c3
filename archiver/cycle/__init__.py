"""One cycle: name the streams, judge the clock, plan, fetch, settle and store."""
