namespace Sidecar.Sse;

/// <summary>Byte literals of the SSE framing.</summary>
internal static class SseBytes
{
    public static ReadOnlySpan<byte> LineBreaks => "\r\n"u8;

    public static ReadOnlySpan<byte> Done => "[DONE]"u8;

    /// <summary>The heartbeat comment; the real client skips comments.</summary>
    public static ReadOnlySpan<byte> KeepAlive => ": keep-alive\n\n"u8;

    public static ReadOnlySpan<byte> DataPrefix => "data: "u8;

    public static ReadOnlySpan<byte> EventEnd => "\n\n"u8;
}
