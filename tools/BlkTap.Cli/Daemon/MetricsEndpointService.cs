using System.Net;
using BlkTap.Metrics;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using OpenTelemetry;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;

namespace BlkTap.Cli.Daemon;

/// <summary>
/// <c>--metrics URL</c>: serves the <see cref="TapMetrics"/> meter to Prometheus (text exposition format) at the URL,
/// through OpenTelemetry's SDK (a meter provider listening to the meter alone) and its Prometheus exporter on an
/// <see cref="HttpListener"/>. Counters come out as <c>blktap_requests_total</c>, <c>blktap_read_bytes_total</c>...,
/// the latency as the histogram <c>blktap_request_duration_seconds</c> (buckets from 10 µs to 10 s).
/// </summary>
/// <remarks>
/// Threading: the host calls start, stop and dispose one at a time; scrapes are answered on the listener's threads.
/// A port in use (or a host that cannot be bound) fails the host's start with a <see cref="MetricsEndpointException"/>.
/// </remarks>
internal sealed class MetricsEndpointService(Uri url, ILogger<MetricsEndpointService> logger) : IHostedService, IDisposable
{
    // A memory disk answers in microseconds, a remote NBD disk in milliseconds.
    private static readonly double[] LatencyBuckets =
        [0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

    private MeterProvider? _provider;

    /// <inheritdoc/>
    public Task StartAsync(CancellationToken cancellationToken)
    {
        try
        {
            _provider = Sdk.CreateMeterProviderBuilder()
                .ConfigureResource(r => r.AddService("blktap"))
                .AddMeter(TapMetrics.MeterName)
                .AddView(TapMetrics.Duration.Name, new ExplicitBucketHistogramConfiguration { Boundaries = LatencyBuckets })
                .AddPrometheusHttpListener(o =>
                {
                    o.Host = url.Host is "0.0.0.0" or "[::]" ? "+" : url.Host;
                    o.Port = url.Port;
                    o.ScrapeEndpointPath = url.AbsolutePath;
                    // Every scrape sees the counters as they are (no 300 ms cache).
                    o.ScrapeResponseCacheDurationMilliseconds = 0;
                })
                .Build();
        }
        // NOTE: the exporter wraps the listener's failure: InvalidOperationException("... could not be started") around
        // the HttpListenerException that names the cause.
        catch (Exception ex) when (ex is HttpListenerException || ex.InnerException is HttpListenerException)
        {
            var cause = ex as HttpListenerException ?? (HttpListenerException)ex.InnerException!;
            throw new MetricsEndpointException($"--metrics {url}: cannot listen: {cause.Message}", ex);
        }
        logger.LogInformation("metrics at {Url}", url);
        return Task.CompletedTask;
    }

    /// <inheritdoc/>
    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <inheritdoc/>
    public void Dispose() => Interlocked.Exchange(ref _provider, null)?.Dispose();
}

/// <summary>The metrics endpoint could not listen; the serve verb exits 2 with its message.</summary>
internal sealed class MetricsEndpointException(string message, Exception inner) : Exception(message, inner);
