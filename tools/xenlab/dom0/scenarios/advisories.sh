# advisories: only the RequiresXen advisory tests (XSA-155, 216, 332, 349, 350, 361: dom0 as a hostile frontend) in dom0
XL_TEST_NAME=.Advisories. . "$XL_DOM0/scenarios/tests.sh"
