using System.Reflection;
using System.Runtime.Loader;

namespace BlkTap.Chains;

/// <summary>
/// Finds taps by name: the built-in ones (a host adds them, for example BlkTap.Examples'
/// <c>ExampleTaps.AddExampleTaps</c>) and those in plugin assemblies loaded at run time (the last TODO of the 2005 Xen
/// blktap, Xen's <c>tools/blktap/README</c>: no new main() per tap), and builds chains from specs.
/// </summary>
/// <remarks>Not thread-safe: build it, load plugins, then use it from one thread.</remarks>
public sealed class TapRegistry
{
    private readonly Dictionary<string, ITapFactory> _factories = new(StringComparer.Ordinal);

    // Assemblies a plugin shares with the host instead of loading its own copy: the contract, so that ITapFactory
    // is one type, plus what ShareWithPlugins adds (an assembly of taps a plugin may build on).
    private readonly HashSet<string> _shared = new(StringComparer.Ordinal) { typeof(TapRegistry).Assembly.GetName().Name! };

    /// <summary>Where each factory came from ("built-in" or a plugin path).</summary>
    public Dictionary<string, string> Origins { get; } = new(StringComparer.Ordinal);

    /// <summary>All factories, by name.</summary>
    public IReadOnlyCollection<ITapFactory> Factories => _factories.Values;

    /// <summary>Adds a factory; a second factory with the same name is refused.</summary>
    public void Add(ITapFactory factory, string origin = "built-in")
    {
        if (_factories.ContainsKey(factory.Name))
            throw new ChainSpecException($"tap '{factory.Name}' from {origin} clashes with one from {Origins[factory.Name]}");
        _factories[factory.Name] = factory;
        Origins[factory.Name] = origin;
    }

    /// <summary>Adds every factory type in <paramref name="assembly"/>.</summary>
    public int AddFrom(Assembly assembly, string origin)
    {
        int n = 0;
        Type[] types;
        try { types = assembly.GetExportedTypes(); }
        catch (Exception ex) when (ex is TypeLoadException or ReflectionTypeLoadException or FileNotFoundException or FileLoadException or BadImageFormatException)
        { throw new ChainSpecException($"plugin '{origin}': its types cannot be loaded: {ex.Message}"); }
        foreach (var t in types)
        {
            if (t.IsAbstract || !typeof(ITapFactory).IsAssignableFrom(t) || t.GetConstructor(Type.EmptyTypes) == null) continue;
            ITapFactory factory;
            try { factory = (ITapFactory)Activator.CreateInstance(t)!; }
            catch (TargetInvocationException ex) when (ex.InnerException != null)
            { throw new ChainSpecException($"plugin '{origin}': tap factory {t.FullName} threw {ex.InnerException.GetType().Name} when created: {ex.InnerException.Message}"); }
            Add(factory, origin);
            n++;
        }
        return n;
    }

    /// <summary>
    /// Makes plugins loaded later use the host's copy of <paramref name="assembly"/> (BlkTap.Abstractions is always
    /// shared). For an assembly of taps that plugins may reference, such as BlkTap.Examples.
    /// </summary>
    public void ShareWithPlugins(Assembly assembly) => _shared.Add(assembly.GetName().Name!);

    /// <summary>
    /// Loads every <c>*.dll</c> in <paramref name="directory"/> into its own AssemblyLoadContext and
    /// adds the tap factories it exports. A plugin references BlkTap.Abstractions (and may reference the
    /// assemblies given to <see cref="ShareWithPlugins"/>), which are shared with the host.
    /// </summary>
    public int LoadPlugins(string directory)
    {
        if (!Directory.Exists(directory)) throw new ChainSpecException($"plugin directory '{directory}' does not exist");
        int n = 0;
        foreach (var dll in Directory.GetFiles(directory, "*.dll").Order(StringComparer.Ordinal))
        {
            Assembly asm;
            // A file named *.dll in the plugin directory is meant to be a plugin: one that is not a .NET assembly
            // (or cannot be loaded) is refused with its name, not skipped.
            try { asm = new PluginLoadContext(dll, _shared).LoadFromAssemblyPath(Path.GetFullPath(dll)); }
            catch (BadImageFormatException ex) { throw new ChainSpecException($"plugin '{dll}': not a .NET assembly ({ex.Message})"); }
            catch (FileLoadException ex) { throw new ChainSpecException($"plugin '{dll}': cannot be loaded: {ex.Message}"); }
            n += AddFrom(asm, dll);
        }
        return n;
    }

    /// <summary>The factory for <paramref name="name"/>; throws naming the known taps.</summary>
    public ITapFactory Get(string name) =>
        _factories.TryGetValue(name, out var f) ? f
        : throw new ChainSpecException($"unknown tap '{name}' (known: {string.Join(", ", _factories.Keys.Order(StringComparer.Ordinal))})");

    /// <summary>
    /// Builds a chain from specs (frontend side first): checks names, options and that the last tap
    /// is the only terminator (unless <paramref name="requireTerminator"/> is false, for interposition
    /// in front of a real backend). The caller owns the chain: dispose it once the runtime has stopped.
    /// </summary>
    public TapChain Build(IReadOnlyList<TapSpec> specs, TapContext context, bool requireTerminator = true)
    {
        if (specs.Count == 0) throw new ChainSpecException("no --tap given: a chain needs at least a terminator (for example --tap mem:size=64M)");
        var factories = specs.Select(s => Get(s.Name)).ToList();
        for (int i = 0; i < specs.Count; i++)
        {
            var known = factories[i].Options.Select(o => o.Key).ToHashSet(StringComparer.Ordinal);
            foreach (var key in specs[i].Options.Keys)
                if (!known.Contains(key))
                    throw new ChainSpecException($"tap '{specs[i].Name}': unknown option '{key}' (known: {(known.Count == 0 ? "none" : string.Join(", ", known.Order(StringComparer.Ordinal)))})");
            foreach (var o in factories[i].Options.Where(o => o.Required))
                if (!specs[i].Options.ContainsKey(o.Key))
                    throw new ChainSpecException($"tap '{specs[i].Name}': missing option '{o.Key}=...' ({o.Description})");
            if (factories[i].IsTerminator && i != specs.Count - 1)
                throw new ChainSpecException($"tap '{specs[i].Name}' serves requests itself, so it must be the last --tap (found at position {i + 1} of {specs.Count})");
        }
        if (requireTerminator && !factories[^1].IsTerminator)
            throw new ChainSpecException($"the chain ends with '{specs[^1].Name}', which passes requests on: end it with a terminator ({string.Join(", ", _factories.Values.Where(f => f.IsTerminator).Select(f => f.Name).Order(StringComparer.Ordinal))})");
        var chain = new TapChain();
        try
        {
            for (int i = 0; i < specs.Count; i++)
            {
                ITap tap;
                // A factory (a plugin's, above all) that fails with anything but a ChainSpecException still fails the
                // chain with one line naming the tap and where it came from, never an unhandled exception.
                try { tap = factories[i].Create(specs[i], context); }
                catch (Exception ex) when (ex is not ChainSpecException and not OutOfMemoryException)
                { throw new ChainSpecException($"tap '{specs[i].Name}' ({Origins.GetValueOrDefault(specs[i].Name, "built-in")}): its factory threw {ex.GetType().Name}: {ex.Message}"); }
                chain.Add(tap);
            }
        }
        catch
        {
            chain.Dispose();
            throw;
        }
        return chain;
    }

    private sealed class PluginLoadContext(string path, IReadOnlySet<string> shared) : AssemblyLoadContext(Path.GetFileNameWithoutExtension(path), isCollectible: false)
    {
        private readonly AssemblyDependencyResolver _resolver = new(path);

        protected override Assembly? Load(AssemblyName name)
        {
            // Share the contract assemblies with the host so ITapFactory is the same type. The host's copy is
            // used whatever version the plugin was built against: the default context would refuse a plugin built
            // against a later version number (every release bumps it), although the contract is the same. A member
            // the host lacks fails when called, inside the factory, which Build reports with the tap's name.
            if (name.Name != null && shared.Contains(name.Name))
                return Default.Assemblies.FirstOrDefault(a => a.GetName().Name == name.Name)
                       ?? Default.LoadFromAssemblyName(new AssemblyName(name.Name));
            var p = _resolver.ResolveAssemblyToPath(name);
            return p != null ? LoadFromAssemblyPath(p) : null;
        }
    }
}
