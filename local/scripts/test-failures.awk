#!/usr/bin/awk -f
# From a `cargo test` log, what a reader needs when only the end of a run is shown: each
# failing test, the first lines of its output (the panic), and cargo's list of the
# targets that failed.
/^test .* \.\.\. FAILED$/ { failed[++n] = $0 }
/^---- .* stdout ----$/ { block = 1; shown = 0; print; next }
block && (/^failures:$/ || /^---- .* stdout ----$/) { block = 0 }
block { if (++shown <= 25) print; else if (shown == 26) print "    [...]"; next }
/^error: test failed, to rerun/ { print }
/^error: [0-9]+ targets? failed:$/ { tail = 1 }
tail { print }
END { if (n) { print "failed tests:"; for (i = 1; i <= n; i++) print "  " failed[i] } }
