using System.Net.Sockets;
using System.Reflection;
using System.Reflection.Emit;
using System.Text;
using BlkTap.Chains;
using NUnit.Framework;

namespace BlkTap.Cli.Tests.BadInput;

/// <summary>
/// Shared pieces of the bad-input tests: a temporary directory, the CLI in process, the one-line check, and the
/// bad files themselves (a corrupt cow overlay, a plugin that throws, an NBD server that answers garbage).
/// </summary>
public abstract class BadInputTestBase
{
    protected string Dir { get; private set; } = "";

    [SetUp]
    public void CreateDir() => Dir = Directory.CreateTempSubdirectory("blktap-bad-").FullName;

    [TearDown]
    public void DeleteDir()
    {
        try { Directory.Delete(Dir, recursive: true); } catch (IOException) { }
    }

    protected string PathOf(string name) => Path.Combine(Dir, name);

    /// <summary>Runs <c>blktap ARGS</c> in process; returns the exit code, stdout and stderr.</summary>
    protected static (int Code, string Out, string Err) Cli(params string[] args)
    {
        var o = new StringWriter();
        var e = new StringWriter();
        int code = CliApp.Run(args, o, e);
        return (code, o.ToString(), e.ToString());
    }

    /// <summary>
    /// Asserts the bad-input contract: exit 2, and stderr exactly one line <c>blktap: ...</c> holding every fragment
    /// (the file and the problem), with no stack trace.
    /// </summary>
    protected static void AssertOneLine((int Code, string Out, string Err) r, params string[] fragments)
    {
        Assert.That(r.Code, Is.EqualTo(CliApp.BadInput), $"stdout:\n{r.Out}\nstderr:\n{r.Err}");
        var lines = r.Err.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.That(lines, Has.Length.EqualTo(1), r.Err);
        Assert.That(lines[0], Does.StartWith("blktap: "));
        Assert.That(lines[0], Does.Not.Contain("   at "), "no stack trace");
        foreach (var f in fragments) Assert.That(lines[0], Does.Contain(f));
    }

    /// <summary>A valid overlay over a 4 MiB raw base (made by a verified <c>run</c>), and the base.</summary>
    protected (string Overlay, string Base) GoodOverlay()
    {
        var image = PathOf("base.img");
        File.WriteAllBytes(image, new byte[4 << 20]);
        var overlay = PathOf("good.cow");
        var r = Cli("run", "--tap", $"cow:overlay={overlay}", "--tap", $"img:path={image}", "--frontends", "1", "--workload", "random:ops=40");
        Assert.That(r.Code, Is.Zero, r.Out + r.Err);
        return (overlay, image);
    }

    /// <summary>CRC-32C (Castagnoli, reflected 0x82F63B78), what the cow header's checksum is (docs/cow-format.md).</summary>
    protected static uint Crc32C(ReadOnlySpan<byte> data)
    {
        uint crc = 0xFFFFFFFF;
        foreach (var b in data)
        {
            crc ^= b;
            for (int k = 0; k < 8; k++) crc = (crc & 1) != 0 ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
        }
        return ~crc;
    }

    /// <summary>
    /// Writes a plugin assembly with one public tap factory named <c>boom</c> (a terminator without options) that
    /// throws InvalidOperationException from its constructor (<paramref name="inConstructor"/>) or from Create.
    /// Emitted here rather than built as a project: it exists only to be broken.
    /// </summary>
    protected static void WriteThrowingPlugin(string path, bool inConstructor)
    {
        var name = new AssemblyName(Path.GetFileNameWithoutExtension(path));
        var assembly = new PersistedAssemblyBuilder(name, typeof(object).Assembly);
        var module = assembly.DefineDynamicModule(name.Name!);
        var type = module.DefineType("Broken.BoomTapFactory", TypeAttributes.Public | TypeAttributes.Sealed | TypeAttributes.Class);
        type.AddInterfaceImplementation(typeof(ITapFactory));
        var throwing = typeof(InvalidOperationException).GetConstructor([typeof(string)])!;
        var ctor = type.DefineConstructor(MethodAttributes.Public, CallingConventions.Standard, Type.EmptyTypes).GetILGenerator();
        ctor.Emit(OpCodes.Ldarg_0);
        ctor.Emit(OpCodes.Call, typeof(object).GetConstructor(Type.EmptyTypes)!);
        if (inConstructor) { ctor.Emit(OpCodes.Ldstr, "boom in the constructor"); ctor.Emit(OpCodes.Newobj, throwing); ctor.Emit(OpCodes.Throw); }
        else ctor.Emit(OpCodes.Ret);
        foreach (var m in typeof(ITapFactory).GetMethods())
        {
            var method = type.DefineMethod(m.Name, MethodAttributes.Public | MethodAttributes.Virtual | MethodAttributes.Final | MethodAttributes.HideBySig | MethodAttributes.NewSlot,
                m.ReturnType, m.GetParameters().Select(p => p.ParameterType).ToArray());
            var il = method.GetILGenerator();
            switch (m.Name)
            {
                case "get_Name": il.Emit(OpCodes.Ldstr, "boom"); il.Emit(OpCodes.Ret); break;
                case "get_Description": il.Emit(OpCodes.Ldstr, "a tap whose factory throws"); il.Emit(OpCodes.Ret); break;
                case "get_IsTerminator": il.Emit(OpCodes.Ldc_I4_1); il.Emit(OpCodes.Ret); break;
                case "get_Options": il.Emit(OpCodes.Ldc_I4_0); il.Emit(OpCodes.Newarr, typeof(TapOptionInfo)); il.Emit(OpCodes.Ret); break;
                default: il.Emit(OpCodes.Ldstr, "boom in Create"); il.Emit(OpCodes.Newobj, throwing); il.Emit(OpCodes.Throw); break;
            }
            type.DefineMethodOverride(method, m);
        }
        type.CreateType();
        assembly.Save(path);
    }

    /// <summary>
    /// A Unix socket server that answers every connection with text that is not NBD, then hangs up, until disposed.
    /// </summary>
    protected sealed class GarbageServer : IDisposable
    {
        private readonly Socket _listener = new(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        private readonly Task _serving;

        public GarbageServer(string path)
        {
            Path = path;
            _listener.Bind(new UnixDomainSocketEndPoint(path));
            _listener.Listen(8);
            _serving = Task.Run(async () =>
            {
                var garbage = Encoding.ASCII.GetBytes(string.Concat(Enumerable.Repeat("HTTP/1.1 400 not NBD at all\r\n", 8)));
                while (true)
                {
                    Socket c;
                    try { c = await _listener.AcceptAsync(); } catch (Exception ex) when (ex is SocketException or ObjectDisposedException) { return; }
                    using (c)
                    {
                        try { await c.SendAsync(garbage); c.Shutdown(SocketShutdown.Both); } catch (SocketException) { }
                    }
                }
            });
        }

        public string Path { get; }
        public string Uri => $"nbd+unix:///?socket={Path}";

        public void Dispose()
        {
            _listener.Dispose();
            _serving.Wait(TimeSpan.FromSeconds(60));
        }
    }
}
