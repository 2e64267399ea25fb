# tests: the [Category("RequiresXen")] NUnit tests run inside dom0 and pass (none skipped)
[ -n "$XL_TESTS_DLL" ] || lab_fail "the test assembly was not built"
mkdir -p /var/lib/xenlab/tests && cd /var/lib/xenlab/tests || exit 1
lab_step "dotnet test RequiresXen"
# Under TCG the test host takes minutes to start (vstest's default: give up after 90 s), and without tiered
# compilation (the lab's default for xen serve) every method is fully optimised before it first runs.
export VSTEST_CONNECTION_TIMEOUT=900 DOTNET_TieredCompilation=1
dotnet test "$XL_TESTS_DLL" --filter "TestCategory=RequiresXen" --logger "trx;LogFileName=$XL_SDIR/requiresxen.trx" --logger "console;verbosity=normal" >"$XL_SDIR/dotnet-test.log" 2>&1
rc=$?
tail -15 "$XL_SDIR/dotnet-test.log"
summary=$(grep -aE "Passed!|Failed!|Total tests|Passed:|Failed:|Skipped:" "$XL_SDIR/dotnet-test.log" | tail -5 | tr '\n' ' ')
passed=$(grep -aoE "Passed: +[0-9]+" "$XL_SDIR/dotnet-test.log" | tail -1 | grep -oE "[0-9]+")
skipped=$(grep -aoE "Skipped: +[0-9]+" "$XL_SDIR/dotnet-test.log" | tail -1 | grep -oE "[0-9]+")
failed=$(grep -aoE "Failed: +[0-9]+" "$XL_SDIR/dotnet-test.log" | tail -1 | grep -oE "[0-9]+")
lab_figure passed "${passed:-0}"; lab_figure failed "${failed:-0}"; lab_figure skipped "${skipped:-0}"
[ $rc -eq 0 ] || lab_fail "dotnet test exited $rc: $summary"
[ "${passed:-0}" -gt 0 ] || lab_fail "no RequiresXen test passed: $summary"
[ "${skipped:-0}" -eq 0 ] || lab_fail "$skipped RequiresXen tests skipped: $summary"
