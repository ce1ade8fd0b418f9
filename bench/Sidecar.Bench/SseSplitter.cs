namespace Sidecar.Bench;

/// <summary>
/// Splits an LF-framed SSE body into its events (each with its blank line) as bytes arrive, for
/// the harness clients that check what they receive event by event.
/// </summary>
internal sealed class SseSplitter
{
    private readonly List<byte> _pending = [];

    /// <summary>Bytes just read from the body.</summary>
    public void Append(ReadOnlySpan<byte> bytes) => _pending.AddRange(bytes);

    /// <summary>The next whole event, if one has arrived.</summary>
    public bool TryTake(out byte[] evt)
    {
        for (var i = 1; i < _pending.Count; i++)
        {
            if (_pending[i] == '\n' && _pending[i - 1] == '\n')
            {
                evt = _pending.GetRange(0, i + 1).ToArray();
                _pending.RemoveRange(0, i + 1);
                return true;
            }
        }

        evt = [];
        return false;
    }
}
