# tests: the [Category("RequiresXen")] NUnit tests run inside dom0 and pass (none skipped)
[ -n "$XL_TESTS_DLL" ] || lab_fail "the test assembly was not built"
mkdir -p /var/lib/xenlab/tests && cd /var/lib/xenlab/tests || exit 1
# XL_TEST_NAME: the advisories scenario runs only the advisory tests (tests/BlkTap.Xen.Tests/Advisories).
filter="--category RequiresXen${XL_TEST_NAME:+ --name-contains $XL_TEST_NAME}"
lab_step "tests: $filter"
# The test assembly's own entry point (LabRunner/LabRunnerProgram.cs: NUnit's in-process runner, published
# ReadyToRun) rather than `dotnet test`, whose vstest host took 4-6 minutes to start under TCG.
export DOTNET_TieredCompilation=1
# shellcheck disable=SC2086 # $filter is words
dotnet "$XL_TESTS_DLL" $filter --results "$XL_SDIR/requiresxen.xml" >"$XL_SDIR/dotnet-test.log" 2>&1
rc=$?
tail -15 "$XL_SDIR/dotnet-test.log"
summary=$(grep -aE "Passed!|Failed!|Total tests|Passed:|Failed:|Skipped:" "$XL_SDIR/dotnet-test.log" | tail -5 | tr '\n' ' ')
passed=$(grep -aoE "Passed: +[0-9]+" "$XL_SDIR/dotnet-test.log" | tail -1 | grep -oE "[0-9]+")
skipped=$(grep -aoE "Skipped: +[0-9]+" "$XL_SDIR/dotnet-test.log" | tail -1 | grep -oE "[0-9]+")
failed=$(grep -aoE "Failed: +[0-9]+" "$XL_SDIR/dotnet-test.log" | tail -1 | grep -oE "[0-9]+")
lab_figure passed "${passed:-0}"; lab_figure failed "${failed:-0}"; lab_figure skipped "${skipped:-0}"
# The advisory tests print figure lines ("XSA-350 figure: cycle_ms=41.2", in the log): the scenario's
# figures, as xsa350_cycle_ms=41.2.
cat "$XL_SDIR/dotnet-test.log" 2>/dev/null |
    grep -aoE "XSA-[0-9]+ figure: [a-z0-9_]+=[0-9.]+" | sed -E 's/^XSA-([0-9]+) figure: /xsa\1_/' | sort -u |
    while IFS== read -r k v; do lab_figure "$k" "$v"; done
[ $rc -eq 0 ] || lab_fail "the test runner exited $rc: $summary"
[ "${passed:-0}" -gt 0 ] || lab_fail "no RequiresXen test passed: $summary"
[ "${skipped:-0}" -eq 0 ] || lab_fail "$skipped RequiresXen tests skipped: $summary"
