# tests: the [Category("RequiresXen")] NUnit tests run inside dom0 and pass (none skipped)
[ -n "$XL_TESTS_DLL" ] || lab_fail "the test assembly was not built"
mkdir -p /var/lib/xenlab/tests && cd /var/lib/xenlab/tests || exit 1
# XL_TEST_FILTER: the advisories scenario runs only the advisory tests (tests/BlkTap.Xen.Tests/Advisories).
filter=${XL_TEST_FILTER:-TestCategory=RequiresXen}
lab_step "dotnet test $filter"
# Under TCG the test host takes minutes to start (vstest's default: give up after 90 s), and without tiered
# compilation (the lab's default for xen serve) every method is fully optimised before it first runs.
export VSTEST_CONNECTION_TIMEOUT=900 DOTNET_TieredCompilation=1
dotnet test "$XL_TESTS_DLL" --filter "$filter" --logger "trx;LogFileName=$XL_SDIR/requiresxen.trx" --logger "console;verbosity=normal" >"$XL_SDIR/dotnet-test.log" 2>&1
rc=$?
tail -15 "$XL_SDIR/dotnet-test.log"
summary=$(grep -aE "Passed!|Failed!|Total tests|Passed:|Failed:|Skipped:" "$XL_SDIR/dotnet-test.log" | tail -5 | tr '\n' ' ')
passed=$(grep -aoE "Passed: +[0-9]+" "$XL_SDIR/dotnet-test.log" | tail -1 | grep -oE "[0-9]+")
skipped=$(grep -aoE "Skipped: +[0-9]+" "$XL_SDIR/dotnet-test.log" | tail -1 | grep -oE "[0-9]+")
failed=$(grep -aoE "Failed: +[0-9]+" "$XL_SDIR/dotnet-test.log" | tail -1 | grep -oE "[0-9]+")
lab_figure passed "${passed:-0}"; lab_figure failed "${failed:-0}"; lab_figure skipped "${skipped:-0}"
# The advisory tests print figure lines ("XSA-350 figure: cycle_ms=41.2", in the log or the trx): the scenario's
# figures, as xsa350_cycle_ms=41.2.
cat "$XL_SDIR/dotnet-test.log" "$XL_SDIR/requiresxen.trx" 2>/dev/null |
    grep -aoE "XSA-[0-9]+ figure: [a-z0-9_]+=[0-9.]+" | sed -E 's/^XSA-([0-9]+) figure: /xsa\1_/' | sort -u |
    while IFS== read -r k v; do lab_figure "$k" "$v"; done
[ $rc -eq 0 ] || lab_fail "dotnet test exited $rc: $summary"
[ "${passed:-0}" -gt 0 ] || lab_fail "no RequiresXen test passed: $summary"
[ "${skipped:-0}" -eq 0 ] || lab_fail "$skipped RequiresXen tests skipped: $summary"
