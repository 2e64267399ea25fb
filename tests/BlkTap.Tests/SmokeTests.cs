using NUnit.Framework;
namespace BlkTap.Tests;
public class SmokeTests { [Test] public void Build_Always_Succeeds() => Assert.Pass(); }
